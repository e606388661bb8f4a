"""A development board (any ESP32 DevKit, 4 MB): PN532 on HSU, display and buzzer, but no PSAM slot and no RTC.

The software SAM with the documented TEST KEYS stands in for the PSAM (it says so on screen; every record it
signs is flagged and never cleared for money), and without an RTC the board refuses payments (OOS_CLOCK) after
every power-up until the depot sets the time (validator.md section 5). Never a validator in service.

    from pins import PINS, HAS, I2C_ADDR      # copied to the board's /lib by the depot tools

Plain data: the drivers take their pins from here, so another board is another folder with its own pins.py
(not `board.py`: on the host that name is Adafruit Blinka's `board` module).
Pins avoid the flash pins (GPIO 6-11), the input-only pins (34-39) for outputs, and the strapping pins
(0, 2, 5, 12, 15) (tests/test_boards.py checks it).
"""

NAME = "esp32-devkit"
FLASH_MB = 4

# What this board has (validator.md section 5: a validator in service needs the RTC and a PSAM).
HAS = {
    "rtc": False,  # no DS3231: the time comes from the depot after every power-up
    "psam": False,  # no slot: the software SAM (test keys, /samkeys.json)
    "display": True,  # SSD1306 128x64 on I2C
    "buzzer": True,
    "leds": True,
}

# direction: "out", "in", "io" (bidirectional), "clock" (a PWM/LEDC output)
PINS = {
    # PN532 on UART2 (HSU mode: the PN532's I0/I1 jumpers both low)
    "pn532_tx": (17, "out"),  # ESP32 TX -> PN532 RXD
    "pn532_rx": (16, "in"),  # PN532 TXD -> ESP32 RX
    "pn532_reset": (4, "out"),  # PN532 RSTPDN (active low)
    # I2C bus 0: the SSD1306 display
    "i2c_sda": (21, "io"),
    "i2c_scl": (22, "out"),
    # feedback
    "buzzer": (13, "clock"),  # LEDC tone
    "led_green": (32, "out"),
    "led_red": (33, "out"),
}

I2C_ADDR = {"rtc": 0x68, "display": 0x3C}  # rtc: unused (HAS["rtc"] is False)
UART = {"pn532": 2}
PN532_BAUD_BOOT = 115200  # the PN532 HSU default; raised with SetSerialBaudRate (validator.md section 6)
PN532_BAUD_RUN = 921600
# 5 MHz card clock (drivers/psam_t0.py CLOCK_HZ): 13,441 baud at F=372; 9,600 baud at 3.57 MHz cannot meet the
# tap budget with a PSAM that offers no PPS (validator.md section 6).
PSAM_CLOCK_HZ = 5000000
