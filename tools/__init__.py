"""Tools that operate Concord from outside; none of them is a service (the operator CLI: tools/cli)."""
