/*
 * The autopack schema, current version. Column names follow the Python Autopack
 * tables (runs.id, tiers.id + tier_id, phases.id + phase_id) so an adopted legacy
 * database keeps working for both. Created whole in one transaction by store_init.
 *
 * SCHEMA_V1_SQL is version 1; each later version adds SCHEMA_V<n>_SQL, which is also the
 * SQL of the migration step from version n-1 (common/store/store_migrate.c). SCHEMA_SQL is the
 * whole current schema.
 */
#ifndef AUTOPACK_SCHEMA_SQL_H
#define AUTOPACK_SCHEMA_SQL_H

#define SCHEMA_VERSION 5

#define SCHEMA_V1_SQL                                                                                                    \
	"CREATE TABLE meta (\n"                                                                                          \
	"  id INTEGER PRIMARY KEY CHECK (id = 1),\n"                                                                     \
	"  db_uuid TEXT NOT NULL,\n"                                                                                     \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  created_by TEXT NOT NULL,\n"                                                                                  \
	"  schema_version INTEGER NOT NULL,\n"                                                                           \
	"  supervisor_pid INTEGER,\n"                                                                                    \
	"  control_socket TEXT\n"                                                                                        \
	");\n"                                                                                                           \
	"CREATE TABLE runs (\n"                                                                                          \
	"  id TEXT PRIMARY KEY,\n"                                                                                       \
	"  state TEXT NOT NULL DEFAULT 'RUN_CREATED',\n"                                                                 \
	"  goal_anchor TEXT,\n"                                                                                          \
	"  workspace TEXT,\n"                                                                                            \
	"  safety_profile TEXT NOT NULL DEFAULT 'normal',\n"                                                             \
	"  run_scope TEXT NOT NULL DEFAULT 'multi_tier',\n"                                                              \
	"  token_cap INTEGER NOT NULL DEFAULT 5000000,\n"                                                                \
	"  max_phases INTEGER NOT NULL DEFAULT 25,\n"                                                                    \
	"  max_duration_minutes INTEGER NOT NULL DEFAULT 120,\n"                                                         \
	"  tokens_used INTEGER NOT NULL DEFAULT 0,\n"                                                                    \
	"  failure_reason TEXT,\n"                                                                                       \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  updated_at TEXT NOT NULL,\n"                                                                                  \
	"  started_at TEXT,\n"                                                                                           \
	"  completed_at TEXT\n"                                                                                          \
	");\n"                                                                                                           \
	"CREATE INDEX ix_runs_state_created ON runs(state, created_at);\n"                                               \
	"CREATE TABLE tiers (\n"                                                                                         \
	"  id INTEGER PRIMARY KEY,\n"                                                                                    \
	"  tier_id TEXT NOT NULL,\n"                                                                                     \
	"  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"                                                \
	"  tier_index INTEGER NOT NULL,\n"                                                                               \
	"  name TEXT NOT NULL,\n"                                                                                        \
	"  description TEXT,\n"                                                                                          \
	"  state TEXT NOT NULL DEFAULT 'PENDING',\n"                                                                     \
	"  token_cap INTEGER,\n"                                                                                         \
	"  ci_run_cap INTEGER,\n"                                                                                        \
	"  tokens_used INTEGER NOT NULL DEFAULT 0,\n"                                                                    \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  updated_at TEXT NOT NULL\n"                                                                                   \
	");\n"                                                                                                           \
	"CREATE INDEX ix_tiers_run ON tiers(run_id, tier_index);\n"                                                      \
	"CREATE TABLE phases (\n"                                                                                        \
	"  id INTEGER PRIMARY KEY,\n"                                                                                    \
	"  phase_id TEXT NOT NULL,\n"                                                                                    \
	"  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"                                                \
	"  tier_id INTEGER NOT NULL REFERENCES tiers(id) ON DELETE CASCADE,\n"                                           \
	"  phase_index INTEGER NOT NULL,\n"                                                                              \
	"  name TEXT NOT NULL,\n"                                                                                        \
	"  description TEXT,\n"                                                                                          \
	"  state TEXT NOT NULL DEFAULT 'QUEUED',\n"                                                                      \
	"  task_category TEXT,\n"                                                                                        \
	"  complexity TEXT,\n"                                                                                           \
	"  builder_mode TEXT,\n"                                                                                         \
	"  phase_type TEXT,\n"                                                                                           \
	"  scope TEXT,\n"                                                                                                \
	"  check_command TEXT,\n"                                                                                        \
	"  max_builder_attempts INTEGER,\n"                                                                              \
	"  max_auditor_attempts INTEGER,\n"                                                                              \
	"  incident_token_cap INTEGER,\n"                                                                                \
	"  builder_attempts INTEGER NOT NULL DEFAULT 0,\n"                                                               \
	"  tokens_used INTEGER NOT NULL DEFAULT 0,\n"                                                                    \
	"  retry_attempt INTEGER NOT NULL DEFAULT 0,\n"                                                                  \
	"  current_attempt_id INTEGER,\n"                                                                                \
	"  last_attempt_timestamp TEXT,\n"                                                                               \
	"  last_failure_reason TEXT,\n"                                                                                  \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  updated_at TEXT NOT NULL,\n"                                                                                  \
	"  started_at TEXT,\n"                                                                                           \
	"  completed_at TEXT,\n"                                                                                         \
	"  UNIQUE (run_id, phase_id)\n"                                                                                  \
	");\n"                                                                                                           \
	"CREATE INDEX ix_phases_run_state ON phases(run_id, state);\n"                                                   \
	"CREATE INDEX ix_phases_state_started ON phases(state, started_at);\n"                                           \
	"CREATE TABLE drain_sessions (\n"                                                                                \
	"  session_id TEXT PRIMARY KEY,\n"                                                                               \
	"  started_at TEXT NOT NULL,\n"                                                                                  \
	"  completed_at TEXT,\n"                                                                                         \
	"  supervisor_pid INTEGER,\n"                                                                                    \
	"  settings_json TEXT NOT NULL DEFAULT '{}',\n"                                                                  \
	"  state_json TEXT NOT NULL DEFAULT '{}',\n"                                                                     \
	"  stop_reason TEXT\n"                                                                                           \
	");\n"                                                                                                           \
	"CREATE TABLE attempts (\n"                                                                                      \
	"  attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,\n"                                                              \
	"  run_id TEXT NOT NULL,\n"                                                                                      \
	"  phase_id TEXT NOT NULL,\n"                                                                                    \
	"  attempt_number INTEGER NOT NULL,\n"                                                                           \
	"  session_id TEXT REFERENCES drain_sessions(session_id),\n"                                                     \
	"  worker_pid INTEGER,\n"                                                                                        \
	"  dry_run INTEGER NOT NULL DEFAULT 0,\n"                                                                        \
	"  initial_state TEXT,\n"                                                                                        \
	"  started_at TEXT NOT NULL,\n"                                                                                  \
	"  ended_at TEXT,\n"                                                                                             \
	"  outcome TEXT,\n"                                                                                              \
	"  failure_reason TEXT,\n"                                                                                       \
	"  message TEXT,\n"                                                                                              \
	"  fingerprint TEXT,\n"                                                                                          \
	"  zero_yield_reason TEXT,\n"                                                                                    \
	"  reached_llm_boundary INTEGER NOT NULL DEFAULT 0,\n"                                                           \
	"  duration_ms INTEGER,\n"                                                                                       \
	"  events_committed INTEGER NOT NULL DEFAULT 0,\n"                                                               \
	"  FOREIGN KEY (run_id, phase_id) REFERENCES phases(run_id, phase_id) ON DELETE CASCADE\n"                       \
	");\n"                                                                                                           \
	"CREATE INDEX ix_attempts_phase ON attempts(run_id, phase_id);\n"                                                \
	"CREATE INDEX ix_attempts_open ON attempts(ended_at) WHERE ended_at IS NULL;\n"                                  \
	"CREATE INDEX ix_attempts_session ON attempts(session_id);\n"                                                    \
	"CREATE TABLE events (\n"                                                                                        \
	"  attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id) ON DELETE CASCADE,\n"                             \
	"  seq INTEGER NOT NULL,\n"                                                                                      \
	"  kind TEXT NOT NULL,\n"                                                                                        \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  level TEXT,\n"                                                                                                \
	"  message TEXT,\n"                                                                                              \
	"  PRIMARY KEY (attempt_id, seq)\n"                                                                              \
	") WITHOUT ROWID;\n"                                                                                             \
	"CREATE TABLE llm_usage_events (\n"                                                                              \
	"  id INTEGER PRIMARY KEY,\n"                                                                                    \
	"  provider TEXT NOT NULL,\n"                                                                                    \
	"  model TEXT NOT NULL,\n"                                                                                       \
	"  run_id TEXT,\n"                                                                                               \
	"  phase_id TEXT,\n"                                                                                             \
	"  role TEXT NOT NULL,\n"                                                                                        \
	"  total_tokens INTEGER NOT NULL DEFAULT 0,\n"                                                                   \
	"  prompt_tokens INTEGER,\n"                                                                                     \
	"  completion_tokens INTEGER,\n"                                                                                 \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  attempt_id INTEGER,\n"                                                                                        \
	"  seq INTEGER,\n"                                                                                               \
	"  status TEXT NOT NULL DEFAULT 'ok',\n"                                                                         \
	"  http_status INTEGER,\n"                                                                                       \
	"  error_class TEXT,\n"                                                                                          \
	"  latency_ms INTEGER,\n"                                                                                        \
	"  try_number INTEGER\n"                                                                                         \
	");\n"                                                                                                           \
	"CREATE INDEX ix_usage_run ON llm_usage_events(run_id, created_at);\n"                                           \
	"CREATE UNIQUE INDEX ux_usage_event ON llm_usage_events(attempt_id, seq) WHERE attempt_id IS NOT NULL;\n"        \
	"CREATE TABLE token_estimation_v2_events (\n"                                                                    \
	"  event_id INTEGER PRIMARY KEY AUTOINCREMENT,\n"                                                                \
	"  run_id TEXT NOT NULL,\n"                                                                                      \
	"  phase_id TEXT NOT NULL,\n"                                                                                    \
	"  timestamp TEXT NOT NULL,\n"                                                                                   \
	"  created_at TEXT NOT NULL,\n"                                                                                  \
	"  category TEXT NOT NULL,\n"                                                                                    \
	"  complexity TEXT NOT NULL,\n"                                                                                  \
	"  deliverable_count INTEGER NOT NULL,\n"                                                                        \
	"  deliverables_json TEXT NOT NULL,\n"                                                                           \
	"  predicted_output_tokens INTEGER NOT NULL,\n"                                                                  \
	"  actual_output_tokens INTEGER NOT NULL,\n"                                                                     \
	"  selected_budget INTEGER NOT NULL,\n"                                                                          \
	"  actual_max_tokens INTEGER,\n"                                                                                 \
	"  success INTEGER NOT NULL,\n"                                                                                  \
	"  truncated INTEGER NOT NULL,\n"                                                                                \
	"  is_truncated_output INTEGER NOT NULL,\n"                                                                      \
	"  stop_reason TEXT,\n"                                                                                          \
	"  model TEXT NOT NULL,\n"                                                                                       \
	"  smape_percent REAL,\n"                                                                                        \
	"  waste_ratio REAL,\n"                                                                                          \
	"  underestimated INTEGER,\n"                                                                                    \
	"  api_reference_required INTEGER,\n"                                                                            \
	"  examples_required INTEGER,\n"                                                                                 \
	"  research_required INTEGER,\n"                                                                                 \
	"  usage_guide_required INTEGER,\n"                                                                              \
	"  context_quality TEXT,\n"                                                                                      \
	"  is_sot_file INTEGER,\n"                                                                                       \
	"  sot_file_name TEXT,\n"                                                                                        \
	"  sot_entry_count_hint INTEGER,\n"                                                                              \
	"  attempt_id INTEGER,\n"                                                                                        \
	"  seq INTEGER,\n"                                                                                               \
	"  estimator_version INTEGER,\n"                                                                                 \
	"  FOREIGN KEY (run_id, phase_id) REFERENCES phases(run_id, phase_id) ON DELETE CASCADE\n"                       \
	");\n"                                                                                                           \
	"CREATE INDEX ix_v2_run_category ON token_estimation_v2_events(run_id, category);\n"                             \
	"CREATE INDEX ix_v2_category_time ON token_estimation_v2_events(category, timestamp);\n"                         \
	"CREATE UNIQUE INDEX ux_v2_event ON token_estimation_v2_events(attempt_id, seq) WHERE attempt_id IS NOT NULL;\n" \
	"CREATE TABLE drain_session_results (\n"                                                                         \
	"  session_id TEXT NOT NULL REFERENCES drain_sessions(session_id) ON DELETE CASCADE,\n"                          \
	"  attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id) ON DELETE CASCADE,\n"                             \
	"  run_id TEXT NOT NULL,\n"                                                                                      \
	"  phase_id TEXT NOT NULL,\n"                                                                                    \
	"  phase_index INTEGER,\n"                                                                                       \
	"  initial_state TEXT,\n"                                                                                        \
	"  final_state TEXT,\n"                                                                                          \
	"  success INTEGER NOT NULL,\n"                                                                                  \
	"  error_message TEXT,\n"                                                                                        \
	"  timestamp TEXT NOT NULL,\n"                                                                                   \
	"  duration_seconds REAL,\n"                                                                                     \
	"  failure_fingerprint TEXT,\n"                                                                                  \
	"  telemetry_events_collected INTEGER,\n"                                                                        \
	"  telemetry_yield_per_minute REAL,\n"                                                                           \
	"  reached_llm_boundary INTEGER NOT NULL DEFAULT 0,\n"                                                           \
	"  zero_yield_reason TEXT,\n"                                                                                    \
	"  PRIMARY KEY (session_id, attempt_id)\n"                                                                       \
	");\n"                                                                                                           \
	"CREATE TABLE control_log (\n"                                                                                   \
	"  id INTEGER PRIMARY KEY,\n"                                                                                    \
	"  at TEXT NOT NULL,\n"                                                                                          \
	"  peer_pid INTEGER,\n"                                                                                          \
	"  peer_uid INTEGER,\n"                                                                                          \
	"  command TEXT NOT NULL,\n"                                                                                     \
	"  args TEXT,\n"                                                                                                 \
	"  ok INTEGER NOT NULL,\n"                                                                                       \
	"  result TEXT\n"                                                                                                \
	");\n"

/* Version 2: calibrated estimator coefficients. */
#define SCHEMA_V2_SQL                                                                              \
	"CREATE TABLE estimator_coefficients (\n"                                                  \
	"  version INTEGER PRIMARY KEY,\n"                                                         \
	"  created_at TEXT NOT NULL,\n"                                                            \
	"  active INTEGER NOT NULL DEFAULT 0,\n"                                                   \
	"  parent_version INTEGER,\n"                                                              \
	"  provenance_json TEXT NOT NULL DEFAULT '{}',\n"                                          \
	"  overhead_json TEXT NOT NULL\n"                                                          \
	");\n"                                                                                     \
	"CREATE UNIQUE INDEX ux_coef_active ON estimator_coefficients(active) WHERE active = 1;\n"

/* Version 3: the shared tables get every column of the Python original's, with the values
 * its Python models write as defaults (common/store/store_original.c), so that autopack
 * writes the same rows into a database of either origin. The step from version 2 also
 * rewrites stored timestamps into the original's format (store_migrate.c). */
#define SCHEMA_V3_SQL                                                                              \
	"ALTER TABLE runs ADD COLUMN max_minor_issues_total INTEGER;\n"                            \
	"ALTER TABLE runs ADD COLUMN ci_runs_used INTEGER NOT NULL DEFAULT 0;\n"                   \
	"ALTER TABLE runs ADD COLUMN minor_issues_count INTEGER NOT NULL DEFAULT 0;\n"             \
	"ALTER TABLE runs ADD COLUMN major_issues_count INTEGER NOT NULL DEFAULT 0;\n"             \
	"ALTER TABLE runs ADD COLUMN promotion_eligible_to_main TEXT NOT NULL DEFAULT 'false';\n"  \
	"ALTER TABLE runs ADD COLUMN debt_status TEXT;\n"                                          \
	"ALTER TABLE tiers ADD COLUMN max_minor_issues_tolerated INTEGER;\n"                       \
	"ALTER TABLE tiers ADD COLUMN max_major_issues_tolerated INTEGER NOT NULL DEFAULT 0;\n"    \
	"ALTER TABLE tiers ADD COLUMN ci_runs_used INTEGER NOT NULL DEFAULT 0;\n"                  \
	"ALTER TABLE tiers ADD COLUMN minor_issues_count INTEGER NOT NULL DEFAULT 0;\n"            \
	"ALTER TABLE tiers ADD COLUMN major_issues_count INTEGER NOT NULL DEFAULT 0;\n"            \
	"ALTER TABLE tiers ADD COLUMN cleanliness TEXT NOT NULL DEFAULT 'clean';\n"                \
	"ALTER TABLE tiers ADD COLUMN started_at TEXT;\n"                                          \
	"ALTER TABLE tiers ADD COLUMN completed_at TEXT;\n"                                        \
	"ALTER TABLE phases ADD COLUMN deployment_config TEXT;\n"                                  \
	"ALTER TABLE phases ADD COLUMN auditor_attempts INTEGER NOT NULL DEFAULT 0;\n"             \
	"ALTER TABLE phases ADD COLUMN minor_issues_count INTEGER NOT NULL DEFAULT 0;\n"           \
	"ALTER TABLE phases ADD COLUMN major_issues_count INTEGER NOT NULL DEFAULT 0;\n"           \
	"ALTER TABLE phases ADD COLUMN issue_state TEXT NOT NULL DEFAULT 'no_issues';\n"           \
	"ALTER TABLE phases ADD COLUMN quality_level TEXT;\n"                                      \
	"ALTER TABLE phases ADD COLUMN quality_blocked INTEGER NOT NULL DEFAULT 0;\n"              \
	"ALTER TABLE phases ADD COLUMN revision_epoch INTEGER NOT NULL DEFAULT 0;\n"               \
	"ALTER TABLE phases ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;\n"             \
	"ALTER TABLE llm_usage_events ADD COLUMN client_id TEXT;\n"                                \
	"ALTER TABLE llm_usage_events ADD COLUMN is_doctor_call INTEGER NOT NULL DEFAULT 0;\n"     \
	"ALTER TABLE llm_usage_events ADD COLUMN doctor_model TEXT;\n"                             \
	"ALTER TABLE llm_usage_events ADD COLUMN doctor_action TEXT;\n"                            \
	"ALTER TABLE llm_usage_events ADD COLUMN phase_type TEXT;\n"                               \
	"ALTER TABLE llm_usage_events ADD COLUMN intent TEXT;\n"

/* Version 4: fitted estimator models, and what the next model may use in the telemetry:
 * the call's input tokens and, per deliverable, its kind and existing size. The step from
 * version 3 adds these columns where missing (store_migrate.c). */
#define SCHEMA_V4_SQL                                                                              \
	"ALTER TABLE estimator_coefficients ADD COLUMN model_json TEXT;\n"                         \
	"ALTER TABLE token_estimation_v2_events ADD COLUMN input_tokens INTEGER;\n"                \
	"ALTER TABLE token_estimation_v2_events ADD COLUMN deliverables_detail_json TEXT;\n"

/* Version 5: the max_tokens of every LLM try, recorded when the try is announced, before
 * it is sent; a try whose worker died before reporting it stays as status 'lost' with its
 * max_tokens, so no spend is invisible. */
#define SCHEMA_V5_SQL "ALTER TABLE llm_usage_events ADD COLUMN max_tokens INTEGER;\n"

static const char SCHEMA_SQL[] =
    SCHEMA_V1_SQL SCHEMA_V2_SQL SCHEMA_V3_SQL SCHEMA_V4_SQL SCHEMA_V5_SQL;

#endif
