"""A machine joining the farm: enrolment with an invitation, its own files, and
the supervisor that keeps its workers and monitor running (farm-join, farm-service)."""
