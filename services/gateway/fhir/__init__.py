"""The gateway's FHIR door: NHS BaRS messages and HL7 Gravity (SDOHCC) Tasks."""
