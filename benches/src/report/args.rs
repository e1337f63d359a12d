//! The command line of `rumor-sim`.

use std::path::PathBuf;

use rumor_core::Duration;

use super::scenario::Scenario;

/// Usage text.
pub const USAGE: &str = "\
rumor-sim: run a named scenario through the deterministic simulator and report its figures

USAGE: rumor-sim [OPTIONS]

  --scenario NAME   join | crash | leave | loss | partition | pause | event  [crash]
  --nodes N         cluster size                                            [50]
  --loss P          loss probability on every link: 0.1 or 10%              [0]
  --seed S          seed of the run                                         [1]
  --settle SECS     steady running between convergence and the fault       [30]
  --duration SECS   window after settling (join: from time zero)            [60]
  --format F        table | json                                            [table]
  --plot FILE.svg   detection CDF (fault scenarios) or members-seen curve
  --compare foca    run foca through the same simulator too; adds ratios
  --full-checks     mirror and check every member table after every step (slow)
  --quiet           no progress lines on stderr
";

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text.
    Table,
    /// One JSON document.
    Json,
}

/// Parsed options.
#[derive(Clone, Debug)]
pub struct Args {
    /// `--scenario`.
    pub scenario: Scenario,
    /// `--nodes`.
    pub nodes: usize,
    /// `--loss`, as a probability.
    pub loss: f64,
    /// `--seed`.
    pub seed: u64,
    /// `--settle`.
    pub settle: Duration,
    /// `--duration`.
    pub duration: Duration,
    /// `--format`.
    pub format: Format,
    /// `--plot`.
    pub plot: Option<PathBuf>,
    /// `--compare foca`.
    pub compare_foca: bool,
    /// `--full-checks`.
    pub full_checks: bool,
    /// `--quiet`.
    pub quiet: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            scenario: Scenario::Crash,
            nodes: 50,
            loss: 0.0,
            seed: 1,
            settle: Duration::from_secs(30),
            duration: Duration::from_secs(60),
            format: Format::Table,
            plot: None,
            compare_foca: false,
            full_checks: false,
            quiet: false,
        }
    }
}

impl Args {
    /// Parses the arguments after the program name; `Err` carries a message for the user
    /// (the usage text for `--help`).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--scenario" => {
                    let v = value()?;
                    out.scenario =
                        Scenario::parse(&v).ok_or_else(|| format!("unknown scenario {v}"))?;
                }
                "--nodes" => out.nodes = number(&value()?, "--nodes")?,
                "--loss" => out.loss = loss(&value()?)?,
                "--seed" => out.seed = number(&value()?, "--seed")?,
                "--duration" => out.duration = seconds(&value()?, "--duration")?,
                "--settle" => out.settle = seconds(&value()?, "--settle")?,
                "--format" => {
                    out.format = match value()?.as_str() {
                        "table" => Format::Table,
                        "json" => Format::Json,
                        other => return Err(format!("unknown format {other}")),
                    }
                }
                "--plot" => out.plot = Some(PathBuf::from(value()?)),
                "--compare" => match value()?.as_str() {
                    "foca" => out.compare_foca = true,
                    other => return Err(format!("cannot compare with {other} (only foca)")),
                },
                "--full-checks" => out.full_checks = true,
                "--quiet" => out.quiet = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option {other}\n\n{USAGE}")),
            }
        }
        if out.nodes < 2 {
            return Err("--nodes must be at least 2".to_owned());
        }
        Ok(out)
    }
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{flag}: not a number: {s}"))
}

fn seconds(s: &str, flag: &str) -> Result<Duration, String> {
    let secs: f64 = number(s.trim_end_matches('s'), flag)?;
    Ok(Duration::from_millis((secs * 1000.0) as u64))
}

fn loss(s: &str) -> Result<f64, String> {
    let p: f64 = match s.strip_suffix('%') {
        Some(pct) => number::<f64>(pct, "--loss")? / 100.0,
        None => number(s, "--loss")?,
    };
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("--loss must be within 0..=1 (or 0%..=100%): {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, String> {
        Args::parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_every_option() {
        let a = parse(
            "--scenario partition --nodes 20 --loss 10% --seed 9 --duration 30s --settle 0 --format json \
             --plot x.svg --compare foca --quiet",
        )
        .unwrap();
        assert_eq!(a.scenario, Scenario::Partition);
        assert_eq!((a.nodes, a.seed), (20, 9));
        assert!((a.loss - 0.1).abs() < 1e-12);
        assert_eq!(a.duration, Duration::from_secs(30));
        assert_eq!(a.settle, Duration::ZERO);
        assert_eq!(a.format, Format::Json);
        assert!(a.compare_foca && a.quiet && a.plot.is_some());
        assert_eq!(parse("--loss 0.3").unwrap().loss, 0.3);
    }

    #[test]
    fn rejects_nonsense() {
        assert!(parse("--scenario nope").is_err());
        assert!(parse("--loss 150%").is_err());
        assert!(parse("--nodes 1").is_err());
        assert!(parse("--compare memberlist").is_err());
        assert!(parse("--nodes").is_err());
    }
}
