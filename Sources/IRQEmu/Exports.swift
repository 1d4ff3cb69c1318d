// One import for a test harness: `import IRQEmu`.
@_exported import KernelRuntime
@_exported import RCU
@_exported import DeviceModel
@_exported import IRQCore
@_exported import IRQSources
