"""The Sinch simulator: load generator processes, each driving many simulated calls over websockets."""
