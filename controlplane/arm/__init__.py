"""ARM plumbing shared by every resource: envelope, errors, paging, LRO responses, auth."""
