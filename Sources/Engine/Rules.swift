// The detection rules as a value: how a pair is judged against its path class, how much evidence
// a component needs, and the hysteresis of each fault class. The engine takes them as input; the
// text format in rules/ (RulesParser) is how operators write them.

import FleetModel

/// How a finding opens and closes: open when the fault holds in `openWindows` of the last
/// `lookbackWindows` closed windows; close after `closeAfterClean` clean windows in a row.
public struct Hysteresis: Sendable, Equatable {
    public var openWindows: Int
    public var lookbackWindows: Int
    public var closeAfterClean: Int

    public init(openWindows: Int, lookbackWindows: Int, closeAfterClean: Int) {
        self.openWindows = openWindows
        self.lookbackWindows = lookbackWindows
        self.closeAfterClean = closeAfterClean
    }
}

/// Thresholds for judging one path class (loopback, intra-host, same-leaf, cross-leaf).
public struct PathClassRules: Sendable, Equatable {
    /// Slow when the pair's p50 exceeds the class's fleet median p50 by this factor...
    public var slowP50Ratio: Double
    /// ...or its p99 exceeds the class's fleet median p99 by this factor...
    public var slowP99Ratio: Double
    /// ...and by at least this many microseconds (below it, differences are noise).
    public var minExcessMicros: Double
    /// Absolute ceilings: a p50 or p99 above these is slow whatever the fleet does (0 = none).
    public var ceilingP50Micros: Double
    public var ceilingP99Micros: Double

    public init(
        slowP50Ratio: Double, slowP99Ratio: Double, minExcessMicros: Double, ceilingP50Micros: Double,
        ceilingP99Micros: Double
    ) {
        self.slowP50Ratio = slowP50Ratio
        self.slowP99Ratio = slowP99Ratio
        self.minExcessMicros = minExcessMicros
        self.ceilingP50Micros = ceilingP50Micros
        self.ceilingP99Micros = ceilingP99Micros
    }
}

/// The remediation policy's settings (docs/remediation.md): the guards every quarantine passes, when
/// one waits for an operator's approval, and when a node goes back to service. Written in the same
/// rules files as the detection rules, so that one `rules check` validates both and a replay with
/// other rules asks "what if" of both. Durations are seconds.
public struct PolicyRules: Sendable, Equatable {
    /// At most this many nodes quarantined at once...
    public var maxQuarantined: Int
    /// ...and at most this share of the fleet's nodes; the lower of the two wins.
    public var maxQuarantinedShare: Double
    /// At most one new quarantine per leaf (failure domain) in this long, unless approved.
    public var leafPeriodSeconds: Int
    /// A token bucket: this many quarantines at once at most...
    public var rateBurst: Int
    /// ...refilled at this many per hour.
    public var ratePerHour: Int
    /// A quarantine below this confidence waits for an operator's approval...
    public var approvalBelowConfidence: Double
    /// ...as does one that would leave more than this many nodes of one leaf quarantined.
    public var approvalAboveLeafQuarantined: Int
    /// An approval not used within this long lapses; so does a held or waiting action this old.
    public var approvalExpirySeconds: Int
    /// A node goes back to service after this many clean windows in a row...
    public var releaseCleanWindows: Int
    /// ...and at least this long after it was quarantined.
    public var releaseDelaySeconds: Int
    /// A node quarantined this many times within `parkPeriodSeconds` stays out for a human.
    public var parkAfterQuarantines: Int
    public var parkPeriodSeconds: Int

    public init(
        maxQuarantined: Int, maxQuarantinedShare: Double, leafPeriodSeconds: Int, rateBurst: Int,
        ratePerHour: Int, approvalBelowConfidence: Double, approvalAboveLeafQuarantined: Int,
        approvalExpirySeconds: Int, releaseCleanWindows: Int, releaseDelaySeconds: Int,
        parkAfterQuarantines: Int, parkPeriodSeconds: Int
    ) {
        self.maxQuarantined = maxQuarantined
        self.maxQuarantinedShare = maxQuarantinedShare
        self.leafPeriodSeconds = leafPeriodSeconds
        self.rateBurst = rateBurst
        self.ratePerHour = ratePerHour
        self.approvalBelowConfidence = approvalBelowConfidence
        self.approvalAboveLeafQuarantined = approvalAboveLeafQuarantined
        self.approvalExpirySeconds = approvalExpirySeconds
        self.releaseCleanWindows = releaseCleanWindows
        self.releaseDelaySeconds = releaseDelaySeconds
        self.parkAfterQuarantines = parkAfterQuarantines
        self.parkPeriodSeconds = parkPeriodSeconds
    }

    /// What `rules/00-default.rules` says.
    public static let defaults = PolicyRules(
        maxQuarantined: 16, maxQuarantinedShare: 0.02, leafPeriodSeconds: 3600, rateBurst: 4, ratePerHour: 12,
        approvalBelowConfidence: 0.5, approvalAboveLeafQuarantined: 2, approvalExpirySeconds: 3600,
        releaseCleanWindows: 30, releaseDelaySeconds: 1800, parkAfterQuarantines: 3, parkPeriodSeconds: 86_400)
}

/// Everything the engine's judgement depends on. Parse it from the text format with `RulesParser`,
/// write it back with `canonicalText`; `Rules.defaults` is what `rules/00-default.rules` says.
public struct Rules: Sendable, Equatable {
    /// Windows after its end that a window stays open for late reports.
    public var graceWindows: Int
    /// A pair with fewer returned probes than this is not judged on latency.
    public var minSamples: Int
    /// A pair is lossy when its loss rate is at least this and at least `minLostProbes` were lost.
    public var lossyRate: Double
    public var minLostProbes: Int
    /// A pair is dead when every probe of at least `minProbesForDead` was lost.
    public var minProbesForDead: Int
    /// A component is blamed only if at least this share of the judged pairs through it are bad
    /// (healthy pairs through a component clear it).
    public var minBadShare: Double
    /// A component other than the reporter's own needs bad pairs from this many reporting nodes.
    public var minIndependentReporters: Int
    /// Judging per path class.
    public var pathClasses: [PathClass: PathClassRules]
    /// Hysteresis for hard faults (dead, all probes lost) and gray ones (slow, lossy).
    public var hardFault: Hysteresis
    public var grayFault: Hysteresis
    /// The remediation policy's settings (the engine itself does not read them).
    public var policy: PolicyRules

    public init(
        graceWindows: Int, minSamples: Int, lossyRate: Double, minLostProbes: Int, minProbesForDead: Int,
        minBadShare: Double, minIndependentReporters: Int, pathClasses: [PathClass: PathClassRules],
        hardFault: Hysteresis, grayFault: Hysteresis, policy: PolicyRules = .defaults
    ) {
        self.graceWindows = graceWindows
        self.minSamples = minSamples
        self.lossyRate = lossyRate
        self.minLostProbes = minLostProbes
        self.minProbesForDead = minProbesForDead
        self.minBadShare = minBadShare
        self.minIndependentReporters = minIndependentReporters
        self.pathClasses = pathClasses
        self.hardFault = hardFault
        self.grayFault = grayFault
        self.policy = policy
    }
}

extension Rules {
    /// The built-in rules: what the binary uses without `--rules`, and exactly what
    /// `rules/00-default.rules` says (a test keeps the two equal). docs/rules.md explains each value.
    public static let defaults = Rules(
        graceWindows: 1,
        minSamples: 10,
        lossyRate: 0.01,
        minLostProbes: 3,
        minProbesForDead: 5,
        minBadShare: 0.6,
        minIndependentReporters: 2,
        pathClasses: [
            .loopback: PathClassRules(
                slowP50Ratio: 1.5, slowP99Ratio: 2.0, minExcessMicros: 1.0, ceilingP50Micros: 0,
                ceilingP99Micros: 0),
            .intraHost: PathClassRules(
                slowP50Ratio: 1.5, slowP99Ratio: 2.0, minExcessMicros: 1.5, ceilingP50Micros: 0,
                ceilingP99Micros: 0),
            .sameLeaf: PathClassRules(
                slowP50Ratio: 1.5, slowP99Ratio: 2.0, minExcessMicros: 2.0, ceilingP50Micros: 0,
                ceilingP99Micros: 0),
            .crossLeaf: PathClassRules(
                slowP50Ratio: 1.5, slowP99Ratio: 2.0, minExcessMicros: 3.0, ceilingP50Micros: 0,
                ceilingP99Micros: 0),
        ],
        hardFault: Hysteresis(openWindows: 2, lookbackWindows: 3, closeAfterClean: 3),
        grayFault: Hysteresis(openWindows: 3, lookbackWindows: 4, closeAfterClean: 3))
}
