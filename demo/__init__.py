"""The demo participant services: a separate service, not one of the orchestrator's adapters.

One process serves every call of the bundled definitions (order: payments, inventory,
shipments; trip: flights, hotels, cars, notifications) from one table (demo.routes), with
idempotency, fault injection and an effect ledger for tests and demos. Run it with
`orchestrator participants`; build it with demo.server or demo.app.
"""
