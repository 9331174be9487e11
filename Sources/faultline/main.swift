// The `faultline` executable: everything lives in FaultlineCLI so tests can drive it in process.
import FaultlineCLI

FaultlineCommand.main()
