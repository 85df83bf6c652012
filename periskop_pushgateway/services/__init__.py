"""The gateway's use cases, between HTTP and storage: accepting a push (its whole sequence in
one function), housekeeping, the gateway's reports about its own troubles, and the Periskop
server configuration it prints."""
