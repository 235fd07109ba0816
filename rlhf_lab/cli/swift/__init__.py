"""A way in for ms-swift users: their command lines translated, their flag names pointed at ours, their launcher's
environment variables obeyed."""
