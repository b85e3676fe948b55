from sink_runtime.proto import sink_pb2 as _sink_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SinkBatch(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[_sink_pb2.SinkRequest.Request]
    def __init__(self, requests: _Optional[_Iterable[_Union[_sink_pb2.SinkRequest.Request, _Mapping]]] = ...) -> None: ...

class SinkBatchResult(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_sink_pb2.SinkResponse.Result]
    def __init__(self, results: _Optional[_Iterable[_Union[_sink_pb2.SinkResponse.Result, _Mapping]]] = ...) -> None: ...
