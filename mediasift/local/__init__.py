"""The embedded default stack (SeaweedFS + receiver + Dagster), a local Ray head, the processes they run
as, and sample media with known ground truth."""
