"""Hardware profiles: typed schema (`schema`) and the YAML loader (`loader`)."""

from seekdeploy.profiles.schema import (
    Budget,
    DeviceSpec,
    HardwareFigures,
    HardwareProfile,
    InputSpec,
    MeasurementProtocol,
    Precision,
    Role,
    RuntimeName,
    RuntimeSpec,
)

__all__ = [
    "Budget",
    "DeviceSpec",
    "HardwareFigures",
    "HardwareProfile",
    "InputSpec",
    "MeasurementProtocol",
    "Precision",
    "Role",
    "RuntimeName",
    "RuntimeSpec",
]
