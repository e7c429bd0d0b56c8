"""A seeded, property-based fuzzer of every gRPC method of central, an edge and EdgeControl.

:mod:`tests.fuzz.messages` draws requests and damages their bytes,
:mod:`tests.fuzz.engine` sends them to real servers and checks the answers,
``python -m tests.fuzz`` runs it for as long as asked, and
``tests/integration/test_fuzz.py`` runs a short seeded round with every test run.
"""
