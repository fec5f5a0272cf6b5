"""What the tests share: the example project driven through manage.py, the PostgreSQL server,
the documented outputs, runs caught in the middle, swapped tenant models and generated
migration graphs. Test modules import from here, never from one another (packaging/test_layout.py
checks it): a test file can then move, or be run alone, without taking another with it."""
