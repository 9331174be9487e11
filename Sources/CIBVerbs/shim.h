// libibverbs as Swift sees it, plus wrappers for what Swift cannot import directly.
#ifndef FAULTLINE_CIBVERBS_SHIM_H
#define FAULTLINE_CIBVERBS_SHIM_H

#include <infiniband/verbs.h>

// ibv_query_port is a macro over an inline function; from Swift the name binds to an old compat
// symbol that takes a smaller struct. Call the real thing through a function Swift can see.
static inline int faultline_ibv_query_port(struct ibv_context *context, uint8_t port_num,
                                           struct ibv_port_attr *port_attr) {
    return ibv_query_port(context, port_num, port_attr);
}

#endif
