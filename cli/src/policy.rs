//! `usher policy check | eval | test`: work on Rego policies without a sidecar.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use usher_policy::{Limits, Policy, PolicySource, RegoVersion, DEFAULT_QUERY};

use crate::CliError;

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum RegoVersionArg {
    V0,
    #[default]
    V1,
}

impl From<RegoVersionArg> for RegoVersion {
    fn from(v: RegoVersionArg) -> RegoVersion {
        match v {
            RegoVersionArg::V0 => RegoVersion::V0,
            RegoVersionArg::V1 => RegoVersion::V1,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Parse and compile Rego files as the sidecar does; print each error as file:line:col.
    #[command(
        after_help = "Example:\n  usher policy check authz.rego roles.json --query data.usher.authz.allow\n\n\
The same compile path and checks as the sidecar's (recursion, conflicting rules, unsafe\n\
variables, unknown functions): a policy that passes here loads in the sidecar.\n\
Exit status 1 when any file has an error."
    )]
    Check {
        /// Rego files (and .json / .yaml data files).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The rule the sidecar asks (its `policy.query`): compiled exactly
        /// as the sidecar loads it. Without it, every rule is.
        #[arg(long, value_name = "Q")]
        query: Option<String>,
        /// Rego syntax: v1 (default) or v0 for older OPA policies.
        #[arg(long, value_enum, default_value_t = RegoVersionArg::V1)]
        rego_version: RegoVersionArg,
    },
    /// Evaluate a policy against an input document and print the decision
    /// as usher would apply it, with the raw result.
    #[command(
        after_help = "Example:\n  usher policy eval --policy authz.rego --data roles.json --input request.json\n\n\
The input has the OPA-Envoy shape (input.attributes.source.principal, input.attributes.request.http...)."
    )]
    Eval {
        /// Rego files.
        #[arg(long = "policy", required = true, value_name = "FILE")]
        policies: Vec<PathBuf>,
        /// JSON or YAML data files, merged under `data`.
        #[arg(long = "data", value_name = "FILE")]
        data: Vec<PathBuf>,
        /// The input document (JSON).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// The rule that decides.
        #[arg(long, default_value = DEFAULT_QUERY, value_name = "Q")]
        query: String,
        #[arg(long, value_enum, default_value_t = RegoVersionArg::V1)]
        rego_version: RegoVersionArg,
    },
    /// Run every `test_*` rule in the given files and folders, like `opa test`.
    #[command(after_help = "Example:\n  usher policy test examples/policies/\n\n\
Loads .rego files (folders recursively) and .json/.yaml data files; prints the tests that\n\
did not pass (-v: every test) and the counts. todo_test_* rules are skipped. Exit status,\n\
as opa test: 0 all passed, 2 a test failed, errored or was skipped (unless -z), 1 no test\n\
ran or the files do not load.")]
    Test {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Only the tests whose full name (data.pkg.test_x) matches this
        /// regular expression.
        #[arg(long, short, value_name = "REGEX")]
        run: Option<String>,
        /// Every test's result, not only those that did not pass.
        #[arg(long, short)]
        verbose: bool,
        /// Skipped (todo_test_*) tests do not make the exit status 2.
        #[arg(long, short = 'z')]
        exit_zero_on_skipped: bool,
        #[arg(long, value_enum, default_value_t = RegoVersionArg::V1)]
        rego_version: RegoVersionArg,
    },
}

pub(crate) fn run(cmd: PolicyCommand) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::Check {
            files,
            query,
            rego_version,
        } => match usher_policy::check_files(&files, rego_version.into(), query.as_deref()) {
            Ok(()) => {
                println!("{} file(s) OK", files.len());
                Ok(())
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                Err(CliError::Failed(format!("{} error(s)", errors.len())))
            }
        },
        PolicyCommand::Eval {
            policies,
            data,
            input,
            query,
            rego_version,
        } => {
            let source = PolicySource::from_files(&policies, &data).map_err(policy_err)?;
            let policy = Policy::compile(&source, &query, rego_version.into(), Limits::default())
                .map_err(policy_err)?;
            let text = std::fs::read_to_string(&input).map_err(|e| {
                CliError::Usage(format!("{}: cannot read the input: {e}", input.display()))
            })?;
            let input: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", input.display())))?;
            let result = policy.evaluate_json(&input).map_err(policy_err)?;
            let decision = policy.decide_json(&input);
            let header_map = |h: &[(http::HeaderName, http::HeaderValue)]| {
                h.iter()
                    .map(|(n, v)| {
                        serde_json::json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())])
                    })
                    .collect::<Vec<_>>()
            };
            let out = serde_json::json!({
                "allowed": decision.allowed,
                "http_status": decision.http_status,
                "body": decision.body,
                "headers": header_map(&decision.headers),
                "response_headers_to_add": header_map(&decision.response_headers_to_add),
                "request_headers_to_remove": decision.request_headers_to_remove.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
                "reason": decision.reason,
                "eval_us": decision.eval_micros,
                "query": query,
                "result": result,
                "revision": policy.revision(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
            );
            Ok(())
        }
        PolicyCommand::Test {
            paths,
            run,
            verbose,
            exit_zero_on_skipped,
            rego_version,
        } => {
            let options = usher_policy::testing::TestOptions { run };
            let report = usher_policy::testing::run_with(&paths, rego_version.into(), &options)
                .map_err(policy_err)?;
            print!("{}", report.render(verbose));
            match report.exit_code(exit_zero_on_skipped) {
                0 => Ok(()),
                1 => Err(CliError::Failed("no policy tests ran".into())),
                _ => Err(CliError::TestsFailed),
            }
        }
    }
}

fn policy_err(e: usher_policy::PolicyError) -> CliError {
    CliError::Failed(e.to_string())
}
