"""The validator application: boot, the tap loop, the service entry points the depot calls (wires core and drivers)."""
