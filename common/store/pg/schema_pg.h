/*
 * The autopack schema on PostgreSQL, current version (SCHEMA_VERSION of
 * common/store/schema.sql.h): the same tables, columns, keys and indexes as on SQLite.
 * The tables the Python original shares (runs, tiers, phases, llm_usage_events,
 * token_estimation_v2_events) have the column types its SQLAlchemy models create on
 * PostgreSQL (TIMESTAMP, BOOLEAN, JSON, INTEGER, SERIAL keys), so the original reads and
 * writes them as its own. autopack's own tables keep SQLite's types (BIGINT flags), but
 * for their times: TIMESTAMP, so that times compare across tables. Created whole in one
 * transaction by db init; never migrated: no older PostgreSQL schema exists, but for
 * meta.server_id (the server's "<system identifier>/<database name>" the database was
 * made in), which a write open adds where it is missing (store_pg_identity_check).
 *
 * Several supervisors share a PostgreSQL database (docs/postgresql.md): the schema also
 * has their registry (supervisors: host, pid, heartbeat, lease timeout, state), the
 * commands sent to them through the database (supervisor_commands, and one
 * supervisor_command_results row per supervisor that carried one out), the supervisor
 * of each attempt (attempts.supervisor_id), and at most one open attempt per run
 * (ux_attempts_run_open).
 */
#ifndef AUTOPACK_SCHEMA_PG_H
#define AUTOPACK_SCHEMA_PG_H

#define SCHEMA_PG_SQL                                                                              \
	"CREATE TABLE meta (\n"                                                                    \
	"  id BIGINT PRIMARY KEY CHECK (id = 1),\n"                                                \
	"  db_uuid TEXT NOT NULL,\n"                                                               \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  created_by TEXT NOT NULL,\n"                                                            \
	"  schema_version BIGINT NOT NULL,\n"                                                      \
	"  supervisor_pid BIGINT,\n"                                                               \
	"  control_socket TEXT,\n"                                                                 \
	"  server_id TEXT\n"                                                                       \
	");\n"                                                                                     \
	"CREATE TABLE runs (\n"                                                                    \
	"  id VARCHAR PRIMARY KEY,\n"                                                              \
	"  state VARCHAR(33) NOT NULL DEFAULT 'RUN_CREATED',\n"                                    \
	"  goal_anchor TEXT,\n"                                                                    \
	"  workspace TEXT,\n"                                                                      \
	"  safety_profile VARCHAR NOT NULL DEFAULT 'normal',\n"                                    \
	"  run_scope VARCHAR NOT NULL DEFAULT 'multi_tier',\n"                                     \
	"  token_cap INTEGER NOT NULL DEFAULT 5000000,\n"                                          \
	"  max_phases INTEGER NOT NULL DEFAULT 25,\n"                                              \
	"  max_duration_minutes INTEGER NOT NULL DEFAULT 120,\n"                                   \
	"  tokens_used INTEGER NOT NULL DEFAULT 0,\n"                                              \
	"  failure_reason TEXT,\n"                                                                 \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  updated_at TIMESTAMP NOT NULL,\n"                                                       \
	"  started_at TIMESTAMP,\n"                                                                \
	"  completed_at TIMESTAMP,\n"                                                              \
	"  max_minor_issues_total INTEGER,\n"                                                      \
	"  ci_runs_used INTEGER NOT NULL DEFAULT 0,\n"                                             \
	"  minor_issues_count INTEGER NOT NULL DEFAULT 0,\n"                                       \
	"  major_issues_count INTEGER NOT NULL DEFAULT 0,\n"                                       \
	"  promotion_eligible_to_main VARCHAR NOT NULL DEFAULT 'false',\n"                         \
	"  debt_status VARCHAR\n"                                                                  \
	");\n"                                                                                     \
	"CREATE INDEX ix_runs_state_created ON runs(state, created_at);\n"                         \
	"CREATE TABLE tiers (\n"                                                                   \
	"  id SERIAL PRIMARY KEY,\n"                                                               \
	"  tier_id VARCHAR NOT NULL,\n"                                                            \
	"  run_id VARCHAR NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"                       \
	"  tier_index INTEGER NOT NULL,\n"                                                         \
	"  name VARCHAR NOT NULL,\n"                                                               \
	"  description TEXT,\n"                                                                    \
	"  state VARCHAR(11) NOT NULL DEFAULT 'PENDING',\n"                                        \
	"  token_cap INTEGER,\n"                                                                   \
	"  ci_run_cap INTEGER,\n"                                                                  \
	"  tokens_used INTEGER NOT NULL DEFAULT 0,\n"                                              \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  updated_at TIMESTAMP NOT NULL,\n"                                                       \
	"  max_minor_issues_tolerated INTEGER,\n"                                                  \
	"  max_major_issues_tolerated INTEGER NOT NULL DEFAULT 0,\n"                               \
	"  ci_runs_used INTEGER NOT NULL DEFAULT 0,\n"                                             \
	"  minor_issues_count INTEGER NOT NULL DEFAULT 0,\n"                                       \
	"  major_issues_count INTEGER NOT NULL DEFAULT 0,\n"                                       \
	"  cleanliness VARCHAR NOT NULL DEFAULT 'clean',\n"                                        \
	"  started_at TIMESTAMP,\n"                                                                \
	"  completed_at TIMESTAMP\n"                                                               \
	");\n"                                                                                     \
	"CREATE INDEX ix_tiers_run ON tiers(run_id, tier_index);\n"                                \
	"CREATE TABLE phases (\n"                                                                  \
	"  id SERIAL PRIMARY KEY,\n"                                                               \
	"  phase_id VARCHAR NOT NULL,\n"                                                           \
	"  run_id VARCHAR NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"                       \
	"  tier_id INTEGER NOT NULL REFERENCES tiers(id) ON DELETE CASCADE,\n"                     \
	"  phase_index INTEGER NOT NULL,\n"                                                        \
	"  name VARCHAR NOT NULL,\n"                                                               \
	"  description TEXT,\n"                                                                    \
	"  state VARCHAR(10) NOT NULL DEFAULT 'QUEUED',\n"                                         \
	"  task_category VARCHAR,\n"                                                               \
	"  complexity VARCHAR,\n"                                                                  \
	"  builder_mode VARCHAR,\n"                                                                \
	"  phase_type VARCHAR,\n"                                                                  \
	"  scope JSON,\n"                                                                          \
	"  check_command TEXT,\n"                                                                  \
	"  max_builder_attempts INTEGER,\n"                                                        \
	"  max_auditor_attempts INTEGER,\n"                                                        \
	"  incident_token_cap INTEGER,\n"                                                          \
	"  builder_attempts INTEGER NOT NULL DEFAULT 0,\n"                                         \
	"  tokens_used INTEGER NOT NULL DEFAULT 0,\n"                                              \
	"  retry_attempt INTEGER NOT NULL DEFAULT 0,\n"                                            \
	"  current_attempt_id BIGINT,\n"                                                           \
	"  last_attempt_timestamp TIMESTAMP,\n"                                                    \
	"  last_failure_reason VARCHAR,\n"                                                         \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  updated_at TIMESTAMP NOT NULL,\n"                                                       \
	"  started_at TIMESTAMP,\n"                                                                \
	"  completed_at TIMESTAMP,\n"                                                              \
	"  deployment_config JSON,\n"                                                              \
	"  auditor_attempts INTEGER NOT NULL DEFAULT 0,\n"                                         \
	"  minor_issues_count INTEGER NOT NULL DEFAULT 0,\n"                                       \
	"  major_issues_count INTEGER NOT NULL DEFAULT 0,\n"                                       \
	"  issue_state VARCHAR NOT NULL DEFAULT 'no_issues',\n"                                    \
	"  quality_level VARCHAR,\n"                                                               \
	"  quality_blocked BOOLEAN NOT NULL DEFAULT FALSE,\n"                                      \
	"  revision_epoch INTEGER NOT NULL DEFAULT 0,\n"                                           \
	"  escalation_level INTEGER NOT NULL DEFAULT 0,\n"                                         \
	"  CONSTRAINT uq_phases_run_id_phase_id UNIQUE (run_id, phase_id)\n"                       \
	");\n"                                                                                     \
	"CREATE INDEX ix_phases_run_state ON phases(run_id, state);\n"                             \
	"CREATE INDEX ix_phases_state_started ON phases(state, started_at);\n"                     \
	"CREATE TABLE drain_sessions (\n"                                                          \
	"  session_id TEXT PRIMARY KEY,\n"                                                         \
	"  started_at TIMESTAMP NOT NULL,\n"                                                       \
	"  completed_at TIMESTAMP,\n"                                                              \
	"  supervisor_pid BIGINT,\n"                                                               \
	"  settings_json TEXT NOT NULL DEFAULT '{}',\n"                                            \
	"  state_json TEXT NOT NULL DEFAULT '{}',\n"                                               \
	"  stop_reason TEXT\n"                                                                     \
	");\n"                                                                                     \
	"CREATE TABLE supervisors (\n"                                                             \
	"  supervisor_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"                   \
	"  host TEXT NOT NULL,\n"                                                                  \
	"  pid BIGINT NOT NULL,\n"                                                                 \
	"  started_at TIMESTAMP NOT NULL,\n"                                                       \
	"  heartbeat_at TIMESTAMP NOT NULL,\n"                                                     \
	"  lease_timeout_ms BIGINT NOT NULL,\n"                                                    \
	"  state TEXT NOT NULL DEFAULT 'live',\n"                                                  \
	"  session_id TEXT,\n"                                                                     \
	"  join_key TEXT,\n"                                                                       \
	"  control_socket TEXT,\n"                                                                 \
	"  status_json TEXT NOT NULL DEFAULT '{}',\n"                                              \
	"  ended_at TIMESTAMP,\n"                                                                  \
	"  lost_by BIGINT,\n"                                                                      \
	"  rejected BIGINT NOT NULL DEFAULT 0\n"                                                   \
	");\n"                                                                                     \
	"CREATE INDEX ix_supervisors_live ON supervisors(state) WHERE state = 'live';\n"           \
	"CREATE TABLE supervisor_commands (\n"                                                     \
	"  command_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"                      \
	"  supervisor_id BIGINT REFERENCES supervisors(supervisor_id),\n"                          \
	"  command TEXT NOT NULL,\n"                                                               \
	"  args TEXT NOT NULL DEFAULT '{}',\n"                                                     \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  created_by TEXT NOT NULL\n"                                                             \
	");\n"                                                                                     \
	"CREATE TABLE supervisor_command_results (\n"                                              \
	"  command_id BIGINT NOT NULL REFERENCES supervisor_commands(command_id)"                  \
	" ON DELETE CASCADE,\n"                                                                    \
	"  supervisor_id BIGINT NOT NULL REFERENCES supervisors(supervisor_id),\n"                 \
	"  done_at TIMESTAMP NOT NULL,\n"                                                          \
	"  ok BIGINT NOT NULL,\n"                                                                  \
	"  result TEXT,\n"                                                                         \
	"  PRIMARY KEY (command_id, supervisor_id)\n"                                              \
	");\n"                                                                                     \
	"CREATE TABLE attempts (\n"                                                                \
	"  attempt_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"                      \
	"  run_id TEXT NOT NULL,\n"                                                                \
	"  phase_id TEXT NOT NULL,\n"                                                              \
	"  attempt_number BIGINT NOT NULL,\n"                                                      \
	"  session_id TEXT REFERENCES drain_sessions(session_id),\n"                               \
	"  worker_pid BIGINT,\n"                                                                   \
	"  dry_run BIGINT NOT NULL DEFAULT 0,\n"                                                   \
	"  initial_state TEXT,\n"                                                                  \
	"  started_at TIMESTAMP NOT NULL,\n"                                                       \
	"  ended_at TIMESTAMP,\n"                                                                  \
	"  outcome TEXT,\n"                                                                        \
	"  failure_reason TEXT,\n"                                                                 \
	"  message TEXT,\n"                                                                        \
	"  fingerprint TEXT,\n"                                                                    \
	"  zero_yield_reason TEXT,\n"                                                              \
	"  reached_llm_boundary BIGINT NOT NULL DEFAULT 0,\n"                                      \
	"  duration_ms BIGINT,\n"                                                                  \
	"  events_committed BIGINT NOT NULL DEFAULT 0,\n"                                          \
	"  supervisor_id BIGINT REFERENCES supervisors(supervisor_id),\n"                          \
	"  FOREIGN KEY (run_id, phase_id) REFERENCES phases(run_id, phase_id) ON DELETE CASCADE\n" \
	");\n"                                                                                     \
	"CREATE INDEX ix_attempts_phase ON attempts(run_id, phase_id);\n"                          \
	"CREATE UNIQUE INDEX ux_attempts_run_open ON attempts(run_id) WHERE ended_at IS NULL;\n"   \
	"CREATE INDEX ix_attempts_supervisor_open ON attempts(supervisor_id)"                      \
	" WHERE ended_at IS NULL;\n"                                                               \
	"CREATE INDEX ix_attempts_open ON attempts(ended_at) WHERE ended_at IS NULL;\n"            \
	"CREATE INDEX ix_attempts_session ON attempts(session_id);\n"                              \
	"CREATE TABLE events (\n"                                                                  \
	"  attempt_id BIGINT NOT NULL REFERENCES attempts(attempt_id) ON DELETE CASCADE,\n"        \
	"  seq BIGINT NOT NULL,\n"                                                                 \
	"  kind TEXT NOT NULL,\n"                                                                  \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  level TEXT,\n"                                                                          \
	"  message TEXT,\n"                                                                        \
	"  PRIMARY KEY (attempt_id, seq)\n"                                                        \
	");\n"                                                                                     \
	"CREATE TABLE llm_usage_events (\n"                                                        \
	"  id SERIAL PRIMARY KEY,\n"                                                               \
	"  provider VARCHAR NOT NULL,\n"                                                           \
	"  model VARCHAR NOT NULL,\n"                                                              \
	"  run_id VARCHAR,\n"                                                                      \
	"  phase_id VARCHAR,\n"                                                                    \
	"  role VARCHAR NOT NULL,\n"                                                               \
	"  total_tokens INTEGER NOT NULL DEFAULT 0,\n"                                             \
	"  prompt_tokens INTEGER,\n"                                                               \
	"  completion_tokens INTEGER,\n"                                                           \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  attempt_id BIGINT,\n"                                                                   \
	"  seq BIGINT,\n"                                                                          \
	"  status TEXT NOT NULL DEFAULT 'ok',\n"                                                   \
	"  http_status BIGINT,\n"                                                                  \
	"  error_class TEXT,\n"                                                                    \
	"  latency_ms BIGINT,\n"                                                                   \
	"  try_number BIGINT,\n"                                                                   \
	"  client_id VARCHAR,\n"                                                                   \
	"  is_doctor_call BOOLEAN NOT NULL DEFAULT FALSE,\n"                                       \
	"  doctor_model VARCHAR,\n"                                                                \
	"  doctor_action VARCHAR,\n"                                                               \
	"  phase_type VARCHAR,\n"                                                                  \
	"  intent VARCHAR,\n"                                                                      \
	"  max_tokens BIGINT\n"                                                                    \
	");\n"                                                                                     \
	"CREATE INDEX ix_usage_run ON llm_usage_events(run_id, created_at);\n"                     \
	"CREATE UNIQUE INDEX ux_usage_event ON llm_usage_events(attempt_id, seq)"                  \
	" WHERE attempt_id IS NOT NULL;\n"                                                         \
	"CREATE TABLE token_estimation_v2_events (\n"                                              \
	"  event_id SERIAL PRIMARY KEY,\n"                                                         \
	"  run_id VARCHAR NOT NULL,\n"                                                             \
	"  phase_id VARCHAR NOT NULL,\n"                                                           \
	"  timestamp TIMESTAMP NOT NULL,\n"                                                        \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  category VARCHAR NOT NULL,\n"                                                           \
	"  complexity VARCHAR NOT NULL,\n"                                                         \
	"  deliverable_count INTEGER NOT NULL,\n"                                                  \
	"  deliverables_json TEXT NOT NULL,\n"                                                     \
	"  predicted_output_tokens INTEGER NOT NULL,\n"                                            \
	"  actual_output_tokens INTEGER NOT NULL,\n"                                               \
	"  selected_budget INTEGER NOT NULL,\n"                                                    \
	"  actual_max_tokens INTEGER,\n"                                                           \
	"  success BOOLEAN NOT NULL,\n"                                                            \
	"  truncated BOOLEAN NOT NULL,\n"                                                          \
	"  is_truncated_output BOOLEAN NOT NULL,\n"                                                \
	"  stop_reason VARCHAR,\n"                                                                 \
	"  model VARCHAR NOT NULL,\n"                                                              \
	"  smape_percent FLOAT,\n"                                                                 \
	"  waste_ratio FLOAT,\n"                                                                   \
	"  underestimated BOOLEAN,\n"                                                              \
	"  api_reference_required BOOLEAN,\n"                                                      \
	"  examples_required BOOLEAN,\n"                                                           \
	"  research_required BOOLEAN,\n"                                                           \
	"  usage_guide_required BOOLEAN,\n"                                                        \
	"  context_quality VARCHAR,\n"                                                             \
	"  is_sot_file BOOLEAN,\n"                                                                 \
	"  sot_file_name VARCHAR,\n"                                                               \
	"  sot_entry_count_hint INTEGER,\n"                                                        \
	"  attempt_id BIGINT,\n"                                                                   \
	"  seq BIGINT,\n"                                                                          \
	"  estimator_version BIGINT,\n"                                                            \
	"  input_tokens BIGINT,\n"                                                                 \
	"  deliverables_detail_json TEXT,\n"                                                       \
	"  FOREIGN KEY (run_id, phase_id) REFERENCES phases(run_id, phase_id) ON DELETE CASCADE\n" \
	");\n"                                                                                     \
	"CREATE INDEX ix_v2_run_category ON token_estimation_v2_events(run_id, category);\n"       \
	"CREATE INDEX ix_v2_category_time ON token_estimation_v2_events(category, timestamp);\n"   \
	"CREATE UNIQUE INDEX ux_v2_event ON token_estimation_v2_events(attempt_id, seq)"           \
	" WHERE attempt_id IS NOT NULL;\n"                                                         \
	"CREATE TABLE drain_session_results (\n"                                                   \
	"  session_id TEXT NOT NULL REFERENCES drain_sessions(session_id) ON DELETE CASCADE,\n"    \
	"  attempt_id BIGINT NOT NULL REFERENCES attempts(attempt_id) ON DELETE CASCADE,\n"        \
	"  run_id TEXT NOT NULL,\n"                                                                \
	"  phase_id TEXT NOT NULL,\n"                                                              \
	"  phase_index BIGINT,\n"                                                                  \
	"  initial_state TEXT,\n"                                                                  \
	"  final_state TEXT,\n"                                                                    \
	"  success BIGINT NOT NULL,\n"                                                             \
	"  error_message TEXT,\n"                                                                  \
	"  timestamp TIMESTAMP NOT NULL,\n"                                                        \
	"  duration_seconds DOUBLE PRECISION,\n"                                                   \
	"  failure_fingerprint TEXT,\n"                                                            \
	"  telemetry_events_collected BIGINT,\n"                                                   \
	"  telemetry_yield_per_minute DOUBLE PRECISION,\n"                                         \
	"  reached_llm_boundary BIGINT NOT NULL DEFAULT 0,\n"                                      \
	"  zero_yield_reason TEXT,\n"                                                              \
	"  PRIMARY KEY (session_id, attempt_id)\n"                                                 \
	");\n"                                                                                     \
	"CREATE TABLE control_log (\n"                                                             \
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"                              \
	"  at TIMESTAMP NOT NULL,\n"                                                               \
	"  peer_pid BIGINT,\n"                                                                     \
	"  peer_uid BIGINT,\n"                                                                     \
	"  command TEXT NOT NULL,\n"                                                               \
	"  args TEXT,\n"                                                                           \
	"  ok BIGINT NOT NULL,\n"                                                                  \
	"  result TEXT\n"                                                                          \
	");\n"                                                                                     \
	"CREATE TABLE estimator_coefficients (\n"                                                  \
	"  version BIGINT PRIMARY KEY,\n"                                                          \
	"  created_at TIMESTAMP NOT NULL,\n"                                                       \
	"  active BIGINT NOT NULL DEFAULT 0,\n"                                                    \
	"  parent_version BIGINT,\n"                                                               \
	"  provenance_json TEXT NOT NULL DEFAULT '{}',\n"                                          \
	"  overhead_json TEXT NOT NULL,\n"                                                         \
	"  model_json TEXT\n"                                                                      \
	");\n"                                                                                     \
	"CREATE UNIQUE INDEX ux_coef_active ON estimator_coefficients(active) WHERE active = 1;\n"

#endif
