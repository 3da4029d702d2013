"""The result contract of every step: result models, their published JSON Schemas, and the
XCom writer and reader."""
