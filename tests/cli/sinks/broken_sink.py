"""A test sink that never comes up: its setup() fails, as with a database that is not there."""

from sink_runtime import DatumIterator, Response, Responses, Sinker, serve


class DatabaseSink(Sinker):
    def setup(self) -> None:
        raise RuntimeError("cannot connect to database postgres://db.invalid:5432/orders")

    def handler(self, datums: DatumIterator) -> Responses:
        return Responses.of(Response.ok(d.id) for d in datums)


if __name__ == "__main__":
    serve(DatabaseSink())
