"""The wire protocol (docs/protocol.md): reading a push body, validating it against the
schemas, filling in what a client may leave out, fitting each occurrence into its byte bound,
and rendering the export the Periskop server scrapes. Nothing here touches the database."""
