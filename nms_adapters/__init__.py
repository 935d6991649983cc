"""Network-side adapters: switch drivers and the NMS export of provisioning events."""
