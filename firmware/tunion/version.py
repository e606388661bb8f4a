"""Firmware identity, stamped into journal segment headers and shown by the service module.

    from tunion.version import FIRMWARE_VERSION, BUILD_DATE
"""
FIRMWARE_VERSION = "0.1.0"
# A wall clock before this day cannot be right (the firmware did not exist yet): OOS_CLOCK.
BUILD_DATE = 20261125
