"""ESP32 generic (4 MB) with the PN532 on I2C instead of HSU: which pin does what, and what the board has.

    from pins import PINS, HAS, I2C_ADDR      # copied to the board's /lib by the depot tools

Plain data: the drivers take their pins from here, so another board is another folder with its own pins.py
(not `board.py`: on the host that name is Adafruit Blinka's `board` module).
Pins avoid the flash pins (GPIO 6-11), the input-only pins (34-39) for outputs, and the strapping pins
(0, 2, 5, 12, 15) (tests/test_boards.py checks it).
"""

NAME = "esp32-pn532-i2c"
# The PN532 shares I2C bus 0 with the RTC and the display (its I0 jumper high, I1 low): one bus, one wire less to
# route, at the cost of a slower link (docs/performance.md: 43 ms of link time per tap against 5.9 ms on HSU).
PN532_BUS = "i2c"
FLASH_MB = 4

# What this board has (validator.md section 5: a validator in service needs the RTC and a PSAM).
HAS = {
    "rtc": True,  # DS3231 on I2C, battery-backed
    "psam": True,  # one ISO 7816 slot on UART1
    "display": True,  # SSD1306 128x64 on I2C
    "buzzer": True,
    "leds": True,
}

# direction: "out", "in", "io" (bidirectional), "clock" (a PWM/LEDC output)
PINS = {
    # PN532 on I2C bus 0 (SDA/SCL below), address 0x24; its reset line still on a GPIO
    "pn532_reset": (4, "out"),  # PN532 RSTPDN (active low)
    # PSAM, ISO 7816-3 T=0: one open-drain I/O line on UART1 (half duplex), a 3.57 MHz clock, reset
    "psam_io": (25, "io"),
    "psam_clk": (26, "clock"),  # LEDC at 5 MHz: 13,441 baud at F=372 D=1 before PPS
    "psam_rst": (27, "out"),
    "psam_detect": (35, "in"),  # card-present switch of the slot (input-only pin is fine)
    # I2C bus 0: DS3231 RTC and the SSD1306 display
    "i2c_sda": (21, "io"),
    "i2c_scl": (22, "out"),
    # feedback
    "buzzer": (13, "clock"),  # LEDC tone
    "led_green": (32, "out"),
    "led_red": (33, "out"),
}

I2C_ADDR = {"rtc": 0x68, "display": 0x3C, "pn532": 0x24}  # PN532 user manual: 0x48 >> 1
UART = {"psam": 1}
PN532_BAUD_BOOT = 115200  # the PN532 HSU default; raised with SetSerialBaudRate (validator.md section 6)
PN532_BAUD_RUN = 921600
# 5 MHz card clock (drivers/psam_t0.py CLOCK_HZ): 13,441 baud at F=372; 9,600 baud at 3.57 MHz cannot meet the
# tap budget with a PSAM that offers no PPS (validator.md section 6).
PSAM_CLOCK_HZ = 5000000
