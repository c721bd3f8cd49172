"""Several workers in one consumer group as one cluster (issue 14).

- `settings`: what differs per worker of one declaration file (store, listen, advertise, id).
"""
