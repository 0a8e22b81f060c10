// Package runner runs job files the way `qpipe run` does, without the
// command line: the lock policy (skip a job up to date with its JOB.lock,
// --check, --locked, --force), staging of outputs beside their
// destinations, the digests and lock files, sharding between processes and
// the memory scheduler of --jobs (README: Lock files; Shards and parallel
// jobs). cmd/qpipe keeps the flags, the printing and the exit codes.
//
// A job goes through the same steps in every mode: load the job file and
// the lock it would write (prepare), decide from the mode, the old lock and
// what changed whether to skip, build, compare or fail (Decide), build into
// the destinations or a staging folder (the build's OutputPath option), and
// record the result (a new lock, staged outputs moved into place).
package runner
