//! A synthetic, reproducible identity workload, written through the engine like any other
//! door: joiners, leavers, renames, membership churn, nested groups and bindings. For
//! benchmarks, load runs, and trying the time-travel queries without an IdP.
//!
//! The same `seed` gives the same sequence of operations. Names carry a tag made of the seed
//! and the log's head when the run started, so a second run on the same tenant (after a crash,
//! say) never collides with the first.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idpsync_engine::ids::{GroupId, Member, ResourceId, UserId};
use idpsync_engine::model::{BindingGroups, MultiValue, Name, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::{Cause, Command, Committed, Origin, Outcome, Source, SubmitError, Tenant};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What to generate.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Users to provision.
    pub users: u64,
    /// Groups to create.
    pub groups: u64,
    /// Membership changes (adds and removes) to make after that.
    pub memberships: u64,
    /// The random seed.
    pub seed: u64,
}

/// How far a run has got.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Commands submitted and committed.
    pub commands: u64,
    /// Commands the engine refused (none are expected).
    pub rejected: u64,
    /// Records appended.
    pub events: u64,
    /// Commands the run will make in all, roughly.
    pub planned: u64,
}

/// How many commands are kept in flight, so the writer can commit them together.
const IN_FLIGHT_MAX: usize = 4_096;

struct Runner<'a> {
    tenant: &'a Arc<Tenant>,
    origin: Origin,
    in_flight: VecDeque<idpsync_engine::tenant::PendingCommit>,
    progress: Progress,
    last_report: Instant,
    report: &'a mut dyn FnMut(&Progress),
}

impl Runner<'_> {
    async fn settle(&mut self, result: Result<Committed, SubmitError>) -> Result<Option<Outcome>, SubmitError> {
        self.progress.commands += 1;
        match result {
            Ok(committed) => {
                self.progress.events += committed.events;
                if self.last_report.elapsed() >= Duration::from_secs(2) {
                    self.last_report = Instant::now();
                    (self.report)(&self.progress);
                }
                Ok(Some(committed.outcome))
            }
            Err(SubmitError::Rejected(rejection)) => {
                self.progress.rejected += 1;
                tracing::debug!(%rejection, "workload command rejected");
                Ok(None)
            }
            Err(failure) => Err(failure),
        }
    }

    /// Queues a command whose outcome is not needed.
    async fn submit(&mut self, command: Command) -> Result<(), SubmitError> {
        let pending = self.tenant.enqueue(command, self.origin.clone()).await?;
        self.in_flight.push_back(pending);
        while self.in_flight.len() > IN_FLIGHT_MAX {
            let oldest = self.in_flight.pop_front().expect("queue is longer than the bound");
            self.settle(oldest.committed().await).await?;
        }
        Ok(())
    }

    /// Waits for every queued command.
    async fn drain(&mut self) -> Result<(), SubmitError> {
        while let Some(pending) = self.in_flight.pop_front() {
            self.settle(pending.committed().await).await?;
        }
        Ok(())
    }

    /// Runs commands in windows and returns their outcomes in order.
    async fn run_all(&mut self, commands: Vec<Command>) -> Result<Vec<Option<Outcome>>, SubmitError> {
        self.drain().await?;
        let mut outcomes = Vec::with_capacity(commands.len());
        let mut window = VecDeque::new();
        for command in commands {
            window.push_back(self.tenant.enqueue(command, self.origin.clone()).await?);
            if window.len() >= IN_FLIGHT_MAX {
                let oldest: idpsync_engine::tenant::PendingCommit = window.pop_front().expect("window is full");
                outcomes.push(self.settle(oldest.committed().await).await?);
            }
        }
        while let Some(pending) = window.pop_front() {
            outcomes.push(self.settle(pending.committed().await).await?);
        }
        Ok(outcomes)
    }
}

fn profile(tag: &str, index: u64, rng: &mut StdRng) -> UserProfile {
    const GIVEN: [&str; 8] = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Radia", "Edsger"];
    const FAMILY: [&str; 8] = [
        "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Perlman", "Dijkstra",
    ];
    const DEPARTMENTS: [&str; 5] = ["Engineering", "Sales", "Finance", "Support", "Operations"];
    let given = GIVEN[rng.random_range(0..GIVEN.len())];
    let family = FAMILY[rng.random_range(0..FAMILY.len())];
    let user_name = format!("{tag}-user{index}@example.com");
    UserProfile {
        name: Some(Box::new(Name {
            given_name: Some(given.to_owned()),
            family_name: Some(family.to_owned()),
            formatted: Some(format!("{given} {family}")),
            ..Name::default()
        })),
        display_name: Some(format!("{given} {family}")),
        emails: vec![MultiValue {
            value: user_name.clone(),
            display: None,
            kind: Some("work".to_owned()),
            primary: true,
        }],
        enterprise: Some(Box::new(idpsync_engine::model::EnterpriseUser {
            department: Some(DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_owned()),
            employee_number: Some(index.to_string()),
            ..Default::default()
        })),
        user_name,
        ..UserProfile::default()
    }
}

/// Picks a group with a skew, so that a few groups are large and most are small.
fn skewed(rng: &mut StdRng, count: usize) -> usize {
    let u: f64 = rng.random();
    ((u.powf(2.5) * count as f64) as usize).min(count - 1)
}

/// Runs the workload against `tenant`, calling `report` every couple of seconds.
pub async fn run(
    tenant: &Arc<Tenant>,
    spec: &WorkloadSpec,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress, SubmitError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let tag = format!("s{}r{}", spec.seed, tenant.state().seq());
    let planned = spec.users + spec.groups + spec.memberships + spec.groups / 5 + spec.users / 50;
    let mut runner = Runner {
        tenant,
        origin: Origin {
            source: Source::Workload,
            cause: Cause::Unspecified,
        },
        in_flight: VecDeque::new(),
        progress: Progress {
            planned,
            ..Progress::default()
        },
        last_report: Instant::now(),
        report,
    };

    // Groups and users, in windows: their ids are needed for what follows.
    let group_commands = (0..spec.groups)
        .map(|index| Command::CreateGroup {
            owner: Owner::Operator,
            external_id: Some(format!("{tag}-g{index}")),
            display_name: format!("{tag}-group-{index}"),
            members: vec![],
        })
        .collect();
    let groups: Vec<GroupId> = runner
        .run_all(group_commands)
        .await?
        .into_iter()
        .filter_map(|outcome| match outcome {
            Some(Outcome::GroupCreated(id)) => Some(id),
            _ => None,
        })
        .collect();
    let user_commands = (0..spec.users)
        .map(|index| Command::ProvisionUser {
            owner: Owner::Operator,
            external_id: Some(format!("{tag}-u{index}")),
            active: true,
            profile: profile(&tag, index, &mut rng),
        })
        .collect();
    let users: Vec<UserId> = runner
        .run_all(user_commands)
        .await?
        .into_iter()
        .filter_map(|outcome| match outcome {
            Some(Outcome::UserProvisioned(id)) => Some(id),
            _ => None,
        })
        .collect();
    if groups.is_empty() || users.is_empty() {
        runner.drain().await?;
        return Ok(runner.progress);
    }

    // Bindings: about one resource per five groups, of every kind.
    for index in 0..(groups.len() / 5).max(1) {
        let kind = ResourceKind::ALL[index % ResourceKind::ALL.len()];
        let resource = ResourceRef {
            kind,
            id: ResourceId::new(&format!("{tag}-{kind}-{index}")).expect("ascii id"),
        };
        let mut pick = || groups[skewed(&mut rng, groups.len())];
        let bound = if kind == ResourceKind::Policy {
            BindingGroups::Policy {
                sources: vec![pick(), pick()],
                destinations: vec![pick()],
            }
        } else {
            BindingGroups::Groups(vec![pick()])
        };
        runner
            .submit(Command::SetBinding {
                resource,
                groups: bound,
            })
            .await?;
    }
    // Nested groups: one group in fifty goes inside another.
    for _ in 0..groups.len() / 50 {
        let (outer, inner) = (
            groups[rng.random_range(0..groups.len())],
            groups[rng.random_range(0..groups.len())],
        );
        if outer != inner {
            runner
                .submit(Command::AddMembers {
                    group: outer,
                    members: vec![Member::Group(inner)],
                })
                .await?;
        }
    }

    // Membership churn with joiners' adds, movers' removes, and now and then a leaver or a rename.
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
    let mut groups_of: Vec<Vec<u32>> = vec![Vec::new(); users.len()];
    let mut is_member: HashSet<(u32, u32)> = HashSet::new();
    let mut alive: Vec<bool> = vec![true; users.len()];
    let mut active: Vec<bool> = vec![true; users.len()];
    for change in 0..spec.memberships {
        let roll = rng.random_range(0..1000u32);
        if roll < 5 {
            // A leaver: deactivated, or deleted outright.
            let user = rng.random_range(0..users.len());
            if !alive[user] {
                continue;
            }
            if active[user] && rng.random_bool(0.7) {
                active[user] = false;
                runner
                    .submit(Command::SetUserActive {
                        user: users[user],
                        active: false,
                    })
                    .await?;
            } else {
                alive[user] = false;
                for group in std::mem::take(&mut groups_of[user]) {
                    members[group as usize].retain(|member| *member as usize != user);
                    is_member.remove(&(group, user as u32));
                }
                runner
                    .submit(Command::DeleteUser {
                        user: users[user],
                        expected_version: None,
                    })
                    .await?;
            }
            continue;
        }
        if roll < 7 {
            let group = rng.random_range(0..groups.len());
            runner
                .submit(Command::UpdateGroup {
                    group: groups[group],
                    expected_version: None,
                    display_name: format!("{tag}-group-{group}-renamed-{change}"),
                    external_id: Some(format!("{tag}-g{group}")),
                })
                .await?;
            continue;
        }
        let group = skewed(&mut rng, groups.len());
        if roll < 150 && !members[group].is_empty() {
            let position = rng.random_range(0..members[group].len());
            let user = members[group].swap_remove(position);
            is_member.remove(&(group as u32, user));
            groups_of[user as usize].retain(|g| *g as usize != group);
            runner
                .submit(Command::RemoveMembers {
                    group: groups[group],
                    members: vec![Member::User(users[user as usize])],
                })
                .await?;
            continue;
        }
        let user = rng.random_range(0..users.len());
        if !alive[user] || !is_member.insert((group as u32, user as u32)) {
            continue;
        }
        members[group].push(user as u32);
        groups_of[user].push(group as u32);
        runner
            .submit(Command::AddMembers {
                group: groups[group],
                members: vec![Member::User(users[user])],
            })
            .await?;
    }
    runner.drain().await?;
    (runner.report)(&runner.progress);
    Ok(runner.progress)
}
