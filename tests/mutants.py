#!/usr/bin/python3
"""make check-mutants: proves that the suite catches a break of each key guarantee.

Each mutant is a one-line `#ifdef AUTOPACK_MUTANT_<name>` in the source that breaks one
guarantee where it is kept. For each, the binaries are built with that flag into
build/mutant-<name>/ (`make MUTANT=<name>`) and the tests that guard the guarantee are run
against them: every one of those runs must fail. Prints one line per mutant (the tests
that caught it) and exits 1 if a mutant survived or is missing from the source.

usage: tests/mutants.py [NAME...]     (default: every mutant)
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PYTHON = "/usr/bin/python3"

# name, the guarantee it breaks, the tests that must catch it (pytest node ids; a unit
# test is tests/test_unit.py::test_unit[<name>]).
MUTANTS = [
    ("foreign_uuid_accepted", "an event naming another database is refused",
     ["tests/test_writer.py::test_stale_and_foreign_events_are_counted_in_status_and_metrics",
      "tests/test_supervisor.py::"
      "test_events_naming_another_database_or_attempt_are_rejected_and_counted"]),
    ("stale_attempt_accepted", "an event or result of another attempt is refused (fence)",
     ["tests/test_writer.py::test_stale_and_foreign_events_are_counted_in_status_and_metrics",
      "tests/test_supervisor.py::"
      "test_events_naming_another_database_or_attempt_are_rejected_and_counted"]),
    # The tables' unique (attempt_id, seq) indexes still keep the rows single under this
    # mutant; what breaks is the supervisor's own duplicate check, seen in its counters.
    ("duplicate_events_written", "a repeated event is recognised as one (attempt, seq)",
     ["tests/test_writer.py::test_stale_and_foreign_events_are_counted_in_status_and_metrics"]),
    ("ack_on_receipt", "an ack is sent only after the commit",
     ["tests/test_writer.py::test_acks_come_only_after_the_commit",
      "tests/test_writer.py::test_a_failed_commit_sends_no_ack_and_is_retried"]),
    ("commit_max_ignored", "--commit-max forces a commit",
     ["tests/test_writer.py::"
      "test_commit_max_commits_a_full_queue_and_the_window_holds_the_rest"]),
    ("requeue_dropped", "a dead worker's phase is requeued",
     ["tests/test_supervisor.py::test_sigkill_of_busy_workers_loses_no_phase",
      "tests/test_pool.py::test_crashed_attempts_count_toward_the_attempt_limit_then_failed"]),
    ("crash_costs_no_attempt", "a crashed attempt counts toward the attempt limit",
     ["tests/test_pool.py::test_crashed_attempts_count_toward_the_attempt_limit_then_failed"]),
    ("hand_unvetted", "a worker's keys and frames go only to the socket the process the"
     " supervisor started made, traced by nobody else",
     ["tests/test_key_window.py::"
      "test_the_supervisor_answers_only_the_worker_it_started_and_nobody_else_traces[traced]",
      "tests/test_key_window.py::"
      "test_the_supervisor_answers_only_the_worker_it_started_and_nobody_else_traces[impostor]"]),
    ("respawn_without_backoff", "dead workers are replaced with doubling backoff",
     ["tests/test_pool.py::"
      "test_dead_workers_are_replaced_with_doubling_backoff_until_a_crash_loop"]),
    ("deadline_never_kills", "a worker sent SIGTERM (past its deadline, cancelled, scaled"
     " down) gets SIGKILL after the kill grace",
     ["tests/test_supervisor.py::test_worker_past_its_deadline_is_terminated_then_killed",
      "tests/test_kill_grace.py::"
      "test_a_worker_that_ignores_sigterm_after_its_result_was_taken_is_killed",
      "tests/test_kill_grace.py::"
      "test_a_worker_a_forced_scale_down_stops_is_killed_if_it_ignores_sigterm"]),
    ("shutdown_never_kills", "a worker asked to exit (a stop, a scale-down) gets SIGKILL"
     " after the kill grace",
     ["tests/test_kill_grace.py::"
      "test_a_worker_that_ignores_shutdown_at_the_end_of_a_drain_is_killed",
      "tests/test_kill_grace.py::"
      "test_a_worker_the_pool_sheds_is_killed_if_it_ignores_shutdown"]),
    ("resume_forgets_state", "--resume continues the saved counters and triage",
     ["tests/test_policy.py::test_resume_after_sigkill_keeps_counters_and_triage"]),
    ("moved_database_unnoticed", "a moved or replaced database stops all writes",
     ["tests/test_supervisor.py::test_database_moved_away_stops_writes_with_an_error"]),
    ("adopt_leaves_phases_in_flight", "adoption requeues what the original left in flight",
     ["tests/test_adopt.py::"
      "test_adopt_keeps_every_legacy_row_backs_up_first_and_drains_the_queued_backlog"]),
    ("adopt_without_backup", "adoption backs the database up before changing it",
     ["tests/test_adopt.py::"
      "test_adopt_keeps_every_legacy_row_backs_up_first_and_drains_the_queued_backlog"]),
    ("calib_apply_not_activated", "calibrate --apply makes the new set the active one",
     ["tests/test_unit.py::test_unit[calib_store_coefficient_sets_version_activate_and_roll_"
      "back]",
      "tests/test_calibrate.py::"
      "test_apply_stores_the_fitted_set_with_provenance_and_rollback_restores_defaults",
      "tests/test_calibration_loop.py::"
      "test_drain_calibrate_apply_fitted_model_drain_again_rollback"]),
    ("calib_rollback_forgets_parent", "calibrate --rollback reactivates the parent set",
     ["tests/test_unit.py::test_unit[calib_store_coefficient_sets_version_activate_and_roll_"
      "back]"]),
    ("anthropic_system_as_message", "Anthropic requests have the Messages API's shape",
     ["tests/test_unit.py::test_unit[worker_llm_anthropic_normal_call_reads_text_usage_and_"
      "stop_reason]",
      "tests/test_unit.py::test_unit[worker_phase_success_emits_usage_v2_and_passes_the_check]",
      "tests/test_e2e_seed.py::test_seed_run_drains_to_ten_complete_phases_with_files_in_the_"
      "workspace[anthropic-sqlite]"]),
    ("openai_usage_misread", "the tokens recorded are the response's own",
     ["tests/test_unit.py::test_unit[worker_llm_openai_normal_call_reads_choices_and_usage]",
      "tests/test_e2e_openai_schema.py::"
      "test_random_schema_valid_responses_through_the_real_worker[11]"]),
    ("key_in_another_header", "the API key travels only in its own header",
     ["tests/test_unit.py::test_unit[worker_llm_key_never_appears_in_any_output]",
      "tests/test_unit.py::test_unit[worker_phase_key_never_leaves_the_process]"]),
    ("key_in_the_connect", "the API key never goes to a proxy in a CONNECT",
     ["tests/test_unit.py::test_unit["
      "worker_llm_request_head_to_a_proxy_holds_the_lines_libcurl_writes]"]),
    ("worker_opens_database", "workers never open the database",
     ["tests/test_isolation.py::test_workers_never_open_the_database"]),
    ("hard_link_accepted", "a database file with more than one name is refused",
     ["tests/test_one_database.py::"
      "test_1_a_second_name_is_refused_and_the_lock_is_the_files_own",
      "tests/test_unit.py::test_unit[store_open_refuses_a_file_with_two_names_naming_the_"
      "count_and_the_fix]"]),
    ("stale_wal_applied", "a -wal that does not continue the file beside it is refused",
     ["tests/test_stale_wal.py::"
      "test_an_older_copy_put_in_place_after_a_kill_is_refused_and_the_log_kept",
      "tests/test_stale_wal.py::test_another_databases_log_without_its_meta_page_is_refused",
      "tests/test_stale_wal.py::test_a_vacuum_into_copy_put_in_place_after_a_kill_is_refused",
      "tests/test_stale_wal.py::"
      "test_an_older_copy_put_in_place_after_an_in_place_vacuum_is_refused",
      "tests/test_stale_wal.py::"
      "test_a_log_left_beside_a_replacement_when_the_salvage_cannot_run_is_refused"]),
    ("uuid_served_twice", "a supervisor of a copy is refused while the original is served",
     ["tests/test_one_database.py::"
      "test_2_a_copy_gets_no_control_of_the_original_and_its_own_identity"]),
    ("reply_identity_unchecked", "autopack-ctl refuses a reply about another database",
     ["tests/test_one_database.py::test_2_ctl_refuses_a_reply_about_another_database"]),
    ("wal_loss_unnoticed", "a removed -wal or -shm is DATABASE LOST, commits kept",
     ["tests/test_one_database.py::"
      "test_3_a_removed_wal_or_shm_is_database_lost_with_every_commit_kept"]),
    ("foreign_write_unnoticed", "a copy as large put over the database in place is LOST",
     ["tests/test_db_file_watch.py::"
      "test_a_copy_as_large_put_over_the_database_in_place_is_database_lost[notrunc-same-size]",
      "tests/test_unit.py::test_unit[store_identity_changed_notices_a_write_by_another_"
      "program_and_writes_nothing_more]"]),
    ("foreign_checkpoint_is_lost", "another program's checkpoint is not a foreign write",
     ["tests/test_db_file_watch.py::"
      "test_checkpoints_reads_and_backups_by_other_programs_are_not_database_lost",
      "tests/test_unit.py::test_unit[store_identity_changed_takes_another_connections_"
      "checkpoint_as_its_own]"]),
    ("checkpoint_failure_unnoticed", "a failed checkpoint is logged, counted and shown",
     ["tests/test_db_file_watch.py::test_a_failing_checkpoint_is_logged_counted_and_shown"]),
    ("uuid_not_checked", "a meta.db_uuid that is not a canonical UUID is refused",
     ["tests/test_one_database.py::"
      "test_5_a_uuid_that_is_not_canonical_is_refused_everywhere_until_reidentified"]),
    ("pg_restore_unnoticed", "a PostgreSQL dump restored into another database is refused",
     ["tests/test_pg_identity.py::"
      "test_a_restored_dump_is_refused_until_reidentified_and_the_original_still_opens"]),
    ("adopt_step_by_step", "an adoption is one transaction: a late failure changes nothing",
     ["tests/test_pg_adopt.py::test_a_failure_midway_rolls_the_whole_adoption_back"]),
    ("columns_not_checked", "a database missing a column autopack uses is refused",
     ["tests/test_one_database.py::test_7_a_dropped_column_is_refused_naming_it"]),
    ("keys_not_checked", "a table that would not assign the key autopack leaves to the "
     "database is refused (adoption, and every command on an adopted database)",
     ["tests/test_adopt.py::"
      "test_adopt_refuses_a_table_without_rowid_whose_key_autopack_leaves_to_sqlite[phases-id]",
      "tests/test_adopt.py::"
      "test_adopt_refuses_a_key_that_is_not_the_tables_integer_primary_key",
      "tests/test_adopt.py::"
      "test_an_adopted_database_whose_phases_became_without_rowid_is_refused_by_every_command"]),
    ("stall_judged_as_hang", "a stall of the supervisor's own never kills a worker",
     ["tests/test_faults.py::test_6_a_stopped_supervisor_judges_no_worker_by_its_own_gap"]),
    ("healthz_ignores_the_file", "/healthz fails once the database file is moved away",
     ["tests/test_observe.py::"
      "test_healthz_answers_while_the_loop_is_stuck_and_fails_once_the_database_is_moved"]),
    ("metrics_count_uncommitted", "the metrics count only what was committed, once",
     ["tests/test_writer.py::test_stale_and_foreign_events_are_counted_in_status_and_metrics"]),
    ("eta_runs_in_parallel", "the ETA lets a run go one phase at a time",
     ["tests/test_observe.py::test_eta_comes_from_the_median_attempt_duration_per_category"]),
    ("ack_before_sync", "an ack or a job leaves only once the fsync of its commit completed",
     ["tests/test_walsync.py::test_acks_and_jobs_leave_only_once_their_commit_is_durable",
      "tests/test_walsync.py::"
      "test_the_loop_goes_on_while_an_fsync_runs_and_no_ack_leaves_before_it_ends"]),
    ("sync_error_ignored", "a failed fsync of the write-ahead log stops all writes, unacked",
     ["tests/test_walsync.py::"
      "test_a_failed_fsync_stops_writing_acknowledges_nothing_of_it_and_exits_3"]),
    ("claim_per_phase", "a round claims its phases in one batch of two statements",
     ["tests/test_fleet.py::test_a_round_claims_its_phases_in_one_batch_of_two_statements"]),
    ("reserved_row_never_lost", "a reserved first try still 'sent' at a crash becomes 'lost'",
     ["tests/test_first_try.py::"
      "test_a_worker_killed_before_its_call_leaves_one_lost_row_with_the_cap[sqlite]",
      "tests/test_first_try.py::test_a_worker_killed_during_its_try_leaves_one_lost_row[pg]"]),
    ("reserved_row_kept", "a reserved first try the worker never made leaves no row",
     ["tests/test_first_try.py::test_a_phase_that_fails_before_its_call_leaves_no_row[sqlite]"]),
    ("no_lease_ahead", "fast phases are handed out on leases opened ahead",
     ["tests/test_lease_ahead.py::test_fast_phases_are_handed_out_ahead_and_each_runs_once"]),
    ("queued_left_open", "a worker's exit ends the job it holds behind its lease too",
     ["tests/test_worker_jobs.py::"
      "test_a_worker_killed_holding_two_jobs_ends_both_and_both_phases_run_again"]),
    ("queued_not_taken", "a job held behind a lease becomes the lease when that ends",
     ["tests/test_worker_jobs.py::test_fast_phases_are_held_two_a_worker_and_each_runs_once",
      "tests/test_worker_jobs.py::test_a_pause_lets_the_held_job_run",
      "tests/test_worker_jobs.py::test_a_stop_lets_the_held_job_run_then_exits",
      "tests/test_worker_jobs.py::"
      "test_a_supervisor_killed_while_workers_hold_two_leaves_a_drainable_database"]),
    ("queued_cancel_missed", "a cancel reaches a job held behind a lease",
     ["tests/test_worker_jobs.py::test_a_cancel_of_the_held_phase_ends_it_as_cancelled"]),
    ("result_after_cancel_taken", "a result read after the cancel of its attempt does not"
     " undo the cancel",
     ["tests/test_cancel_race.py::"
      "test_a_result_that_comes_after_the_cancel_does_not_undo_it[success]",
      "tests/test_cancel_race.py::"
      "test_a_result_that_comes_after_the_cancel_does_not_undo_it[failed]"]),
    ("queued_before_durable", "a job held behind a lease leaves only once it is durable",
     ["tests/test_worker_jobs.py::test_a_held_job_leaves_only_once_its_lease_is_durable"]),
    ("orphans_left", "what a check put in a session of its own does not outlive it",
     ["tests/test_containment.py::"
      "test_a_process_that_left_the_session_does_not_outlive_its_check[no-namespace]",
      "tests/test_containment.py::"
      "test_a_killed_workers_process_that_left_the_session_is_gone_before_its_phase_runs_again"
      "[no-namespace]"]),
    ("foreign_left_at_drain_end", "a phase another program queues as the drain ends is"
     " drained before the exit",
     ["tests/test_legacy_drain.py::"
      "test_a_phase_queued_by_hand_while_the_last_phase_runs_is_drained_before_the_exit"]),
    ("key_refusal_ignored", "a call refused for its key trips the breaker at once",
     ["tests/test_key_refused.py::"
      "test_a_wrong_key_stops_the_drain_after_the_calls_in_flight_and_exits_4",
      "tests/test_key_refused.py::test_a_403_pauses_dispatch_and_status_says_why"]),
]


def present(name):
    """True when the mutant's #ifdef is in the source."""
    out = subprocess.run(["git", "grep", "-l", "AUTOPACK_MUTANT_" + name, "--", "*.c", "*.h"],
                         cwd=ROOT, capture_output=True, text=True)
    return bool(out.stdout.strip())


def run_mutant(name, tests):
    """Build the mutant and run its tests; return (built, failed test ids, log)."""
    b = subprocess.run(["make", "-s", "-j2", "MUTANT=" + name, "all", "unit-tests"],
                       cwd=ROOT, capture_output=True, text=True)
    if b.returncode != 0:
        return False, [], b.stdout + b.stderr
    env = dict(os.environ, AUTOPACK_BIN=os.path.join(ROOT, "build", "mutant-" + name, "bin"))
    r = subprocess.run([PYTHON, "-m", "pytest", "-c", "tests/pytest.ini", "-rfE"] + tests, cwd=ROOT, env=env,
                       capture_output=True, text=True)
    # A test fails in its body (FAILED) or in a fixture (ERROR); an id that selects
    # nothing leaves pytest's exit status at 4 or 5 and counts as not caught.
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M)
    if r.returncode not in (0, 1):
        failed = []
    return True, failed, r.stdout[-3000:] + r.stderr[-2000:]


def caught_by(test, failed):
    """True when `test` (a test id, or the id of a parametrized test without its
    parameters) is among the failed ids."""
    return any(f == test or f.startswith(test + "[") for f in failed)


def main(argv):
    names = argv[1:] or [m[0] for m in MUTANTS]
    table = {m[0]: m for m in MUTANTS}
    bad = 0
    for name in names:
        if name not in table:
            print("mutants: no mutant %s" % name)
            return 2
        _, guarantee, tests = table[name]
        if not present(name):
            print("MISSING   %-26s no #ifdef AUTOPACK_MUTANT_%s in the source" % (name, name),
                  flush=True)
            bad += 1
            continue
        built, failed, log = run_mutant(name, tests)
        if not built:
            print("BROKEN    %-26s does not build:\n%s" % (name, log), flush=True)
            bad += 1
        elif not all(caught_by(t, failed) for t in tests):
            survived = sorted(t for t in tests if not caught_by(t, failed))
            print("SURVIVED  %-26s %s; passing: %s" % (name, guarantee, ", ".join(survived)))
            print(log, flush=True)
            bad += 1
        else:
            print("caught    %-26s %s: %s" % (name, guarantee,
                                             ", ".join(t.split("::")[-1] for t in failed)),
                  flush=True)
    print("%d mutant(s), %d caught, %d not" % (len(names), len(names) - bad, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
