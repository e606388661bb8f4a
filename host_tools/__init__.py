"""The depot's tools: build and check denylists now; flash, provision, pull and reports as they land."""
