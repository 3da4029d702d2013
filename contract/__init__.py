"""The result contract shared by every step: result models, their JSON Schemas, the XCom writer
and reader, and the step runner that turns failures into a non-zero exit with a one-line reason."""
