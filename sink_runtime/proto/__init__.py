"""Generated gRPC stubs of sink.v1 and udsink.v1; the .proto files beside them are the source.

Regenerate with `python scripts/gen_proto.py`.
"""
