//! Synthetic durable execution histories: realistic, valid, and deterministic from a seed.
//!
//! [`history`] writes the events one execution of a busy order-processing workflow would leave:
//! mostly steps (some retried with back-off, a few failing for good, a rare invocation that
//! crashed mid-step), waits, callbacks (succeeded, failed, timed out), `wait_for_callback`,
//! child contexts, parallel blocks with their branches, maps with their iterations,
//! `wait_for_condition` polls, and chained invokes of durable and plain functions. Every
//! suspension ends a Lambda invocation with an InvocationCompleted carrying StartTimestamp,
//! EndTimestamp and RequestId, as the real service writes them. The history is valid: the fold
//! reports no anomaly on it.
//!
//! [`to_wire_json`] writes events back in the exact JSON shape of one
//! `GetDurableExecutionHistory` response, so a generated history can feed the raw-JSON reader,
//! benchmarks and fake API servers.
//!
//! No RNG crate: a splitmix64 generator seeded from [`SynthSpec::seed`] drives every choice, so
//! the same spec always gives the same events, on every platform.

use crate::history::{ErrorInfo, Event, EventDetails, OperationRef, Payload, RetryDetails};
use crate::time::Timestamp;

/// The service's limit of operations per execution.
pub const MAX_OPERATIONS: usize = 3000;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSpec {
    /// Operations to create (distinct operation ids, the execution's own id not counted).
    /// [`MAX_OPERATIONS`] gives a history of roughly 7,000 to 10,000 events.
    pub operations: usize,
    /// Every choice (mix, names, ids, times, payloads) follows from it.
    pub seed: u64,
    /// The ExecutionStarted time; later events follow at realistic intervals.
    pub start: Timestamp,
    /// Payloads as `IncludeExecutionData=true` returns them (JSON text of 50 to 500 bytes);
    /// otherwise inputs and results are `{"Truncated": true}` without a payload.
    pub include_payloads: bool,
    /// End with a final InvocationCompleted and a terminal event; otherwise the execution is
    /// left running, suspended on a wait (its last operation).
    pub finished: bool,
}

impl Default for SynthSpec {
    /// 100 operations, seed 0, starting 2026-11-21T08:03:49.114Z, payloads included, finished.
    fn default() -> Self {
        SynthSpec {
            operations: 100,
            seed: 0,
            start: Timestamp::from_millis(1_795_248_229_114),
            include_payloads: true,
            finished: true,
        }
    }
}

/// Generates one execution's history: EventIds 1, 2, 3 ..., ExecutionStarted first and, when
/// `spec.finished`, a terminal Execution event last. Deterministic in `spec`.
pub fn history(spec: &SynthSpec) -> Vec<Event> {
    Gen::new(spec).run(spec)
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn ms(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn hex(&mut self, digits: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(digits);
        let mut word = 0u64;
        for i in 0..digits {
            if i % 16 == 0 {
                word = self.next_u64();
            }
            s.push(char::from(HEX[(word & 15) as usize]));
            word >>= 4;
        }
        s
    }

    /// A version-4 UUID, as request ids and execution ids look.
    pub(crate) fn uuid(&mut self) -> String {
        let h = self.hex(32);
        let variant = ['8', '9', 'a', 'b'][self.below(4) as usize];
        format!(
            "{}-{}-4{}-{variant}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        )
    }
}

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

const STEP_NAMES: &[&str] = &[
    "validate-order",
    "charge-card",
    "reserve-inventory",
    "calculate-tax",
    "apply-discount",
    "fraud-score",
    "create-invoice",
    "send-confirmation-email",
    "update-crm",
    "allocate-warehouse",
    "book-courier",
    "notify-customer",
    "write-ledger-entry",
    "fetch-exchange-rate",
    "resize-product-images",
    "sync-loyalty-points",
];
const WAIT_NAMES: &[&str] = &[
    "cool-down",
    "wait-for-settlement",
    "rate-limit-pause",
    "delay",
];
const CALLBACK_NAMES: &[&str] = &[
    "manager-approval",
    "payment-webhook",
    "manual-review",
    "customer-confirmation",
];
const CONTEXT_NAMES: &[&str] = &[
    "process-order-line",
    "handle-refund",
    "prepare-shipment",
    "kyc-checks",
];
const POLL_NAMES: &[&str] = &[
    "poll-shipment-status",
    "poll-payment-settled",
    "poll-export-job",
];
const SERVICES: &[&str] = &[
    "inventory-service",
    "payment-gateway",
    "notification-service",
    "fraud-check",
    "shipping-quote",
];
const WAIT_SECONDS: &[u64] = &[1, 2, 5, 5, 10, 10, 15, 30, 30, 60, 60, 120, 300, 900, 3600];
const STEP_ERRORS: &[(&str, &str)] = &[
    (
        "ConnectionError",
        "connection reset by peer while calling payments.internal:443",
    ),
    ("TimeoutError", "upstream did not answer within 3000 ms"),
    ("ThrottlingException", "Rate exceeded"),
    (
        "PaymentDeclined",
        "card ending 4242 was declined: insufficient_funds",
    ),
    ("ValidationError", "field \"quantity\" must be positive"),
    ("KeyError", "'shipping_address' not found in order payload"),
];
const PRODUCTS: &[&str] = &[
    "Espresso beans 1kg",
    "Café crème filter",
    "Grinder burr set",
    "Milk frother",
    "Travel mug — steel",
    "Descaler 500ml",
];
const STATUSES: &[&str] = &["CONFIRMED", "PENDING", "RESERVED", "SHIPPED", "PAID"];
const CURRENCIES: &[&str] = &["USD", "EUR", "GBP", "JPY"];

struct Gen {
    rng: Rng,
    events: Vec<Event>,
    /// The current time (ms since the epoch).
    now: i64,
    /// Operations still to create.
    budget: usize,
    payloads: bool,
    invocation_start: i64,
    /// Numbers names (`charge-card-17`).
    seq: usize,
    exec: OperationRef,
}

/// How a step's attempts go.
#[derive(Clone, Copy)]
enum StepPlan {
    /// Failed attempts (each scheduling a retry) before the one that succeeds.
    Succeeds { failures: u64 },
    /// Attempts that all fail; the last schedules no retry (NextAttemptDelaySeconds 0).
    FailsFor { attempts: u64 },
}

impl Gen {
    fn new(spec: &SynthSpec) -> Self {
        // Mix the seed so that seeds 0, 1, 2 ... start far apart.
        let mut rng = Rng(spec.seed ^ 0x6A09_E667_F3BC_C908);
        rng.next_u64();
        let exec = OperationRef {
            id: rng.uuid().into(),
            name: Some(format!("orders-{}", rng.hex(8)).into()),
            parent_id: None,
            sub_type: None,
        };
        Gen {
            rng,
            events: Vec::with_capacity(spec.operations * 3 + 8),
            now: spec.start.millis(),
            budget: spec.operations,
            payloads: spec.include_payloads,
            invocation_start: spec.start.millis(),
            seq: 0,
            exec,
        }
    }

    fn run(mut self, spec: &SynthSpec) -> Vec<Event> {
        let exec = self.exec.clone();
        let input = self.payload();
        self.emit(
            Some(&exec),
            EventDetails::ExecutionStarted {
                input,
                execution_timeout_seconds: None,
            },
        );
        if spec.operations == 0 && !spec.finished {
            return self.finish_timeout(spec);
        }
        // The first invocation: a cold start.
        self.invocation_start = self.now + self.rng.ms(150, 900);
        self.now = self.invocation_start + self.rng.ms(5, 60);
        let reserve = usize::from(!spec.finished);
        while self.budget > reserve {
            self.block(None, 0);
        }
        if spec.finished {
            self.end_invocation(None);
            self.now += self.rng.ms(0, 2);
            let details = if self.rng.percent(92) {
                EventDetails::ExecutionSucceeded {
                    result: self.payload(),
                }
            } else {
                EventDetails::ExecutionFailed {
                    error: Some(self.error()),
                }
            };
            self.emit(Some(&exec), details);
        } else if self.budget > 0 {
            // Left running: suspended on a long wait.
            self.wait(None, false);
        }
        self.finish_timeout(spec)
    }

    /// Sets ExecutionTimeout to the smallest usual value that the execution fits in.
    fn finish_timeout(mut self, spec: &SynthSpec) -> Vec<Event> {
        let elapsed = (self.now - spec.start.millis()) / 1000;
        let timeout = [900, 3600, 86_400, 604_800, 2_592_000, 31_622_400]
            .into_iter()
            .find(|&t| t >= elapsed * 5 / 4 + 60)
            .unwrap_or(31_622_400);
        if let Some(EventDetails::ExecutionStarted {
            execution_timeout_seconds,
            ..
        }) = self.events.first_mut().map(|e| &mut e.details)
        {
            *execution_timeout_seconds = Some(timeout as u64);
        }
        self.events
    }

    fn emit(&mut self, op: Option<&OperationRef>, details: EventDetails) {
        let id = self.events.len() as u64 + 1;
        self.events.push(Event {
            id,
            timestamp: Timestamp::from_millis(self.now),
            operation: op.cloned(),
            details,
        });
    }

    fn advance(&mut self, lo: i64, hi: i64) {
        self.now += self.rng.ms(lo, hi);
    }

    /// The time a step's code runs: mostly milliseconds, sometimes seconds.
    fn work(&mut self) {
        let roll = self.rng.below(100);
        let ms = match roll {
            0..70 => self.rng.ms(0, 40),
            70..95 => self.rng.ms(40, 400),
            _ => self.rng.ms(400, 6000),
        };
        self.now += ms;
    }

    /// A new operation: takes one from the budget.
    fn new_op(&mut self, parent: Option<&str>, sub_type: &str, name: String) -> OperationRef {
        debug_assert!(self.budget > 0);
        self.budget -= 1;
        OperationRef {
            id: self.rng.hex(64).into(),
            name: Some(name.into()),
            parent_id: parent.map(Into::into),
            sub_type: Some(sub_type.into()),
        }
    }

    fn name(&mut self, words: &[&str]) -> String {
        self.seq += 1;
        let w = *self.rng.pick(words);
        format!("{w}-{}", self.seq)
    }

    /// Ends the running invocation: the function returned (suspended) or crashed.
    fn end_invocation(&mut self, error: Option<ErrorInfo>) {
        let end = self.now + self.rng.ms(1, 12);
        self.now = end + self.rng.ms(2, 140);
        let request_id = self.rng.uuid();
        self.emit(
            None,
            EventDetails::InvocationCompleted {
                start: Some(Timestamp::from_millis(self.invocation_start)),
                end: Some(Timestamp::from_millis(end)),
                request_id: Some(request_id),
                error,
            },
        );
    }

    /// The service invokes the function again once `due` has come; it replays up to new work.
    fn begin_invocation(&mut self, due: i64) {
        let at = due.max(self.now);
        let startup = if self.rng.percent(12) {
            self.rng.ms(250, 1200)
        } else {
            self.rng.ms(15, 120)
        };
        self.invocation_start = at + startup;
        self.now = self.invocation_start + self.rng.ms(3, 60);
    }

    /// One operation or group of operations, taking at least one from the budget.
    fn block(&mut self, parent: Option<&str>, depth: u32) {
        let roll = self.rng.below(100);
        let budget = self.budget;
        if depth == 0 {
            match roll {
                0..8 => self.wait(parent, true),
                8..13 => self.callback(parent),
                13..16 if budget >= 3 => self.wait_for_callback(parent),
                16..24 if budget >= 2 => self.child_context(parent, depth),
                24..29 if budget >= 5 => self.parallel(parent),
                29..34 if budget >= 5 => self.map(parent),
                34..40 => self.wait_for_condition(parent),
                40..46 => self.chained_invoke(parent),
                _ => self.step(parent),
            }
        } else {
            match roll {
                0..8 => self.wait(parent, true),
                8..12 => self.callback(parent),
                12..18 => self.wait_for_condition(parent),
                18..22 => self.chained_invoke(parent),
                22..28 if depth < 3 && budget >= 2 => self.child_context(parent, depth),
                _ => self.step(parent),
            }
        }
        self.advance(0, 4);
    }

    fn step(&mut self, parent: Option<&str>) {
        let roll = self.rng.below(100);
        let plan = match roll {
            0..84 => StepPlan::Succeeds { failures: 0 },
            84..96 => StepPlan::Succeeds {
                failures: self.rng.between(1, 3),
            },
            _ => StepPlan::FailsFor {
                attempts: self.rng.between(1, 3),
            },
        };
        let name = self.name(STEP_NAMES);
        let op = self.new_op(parent, "Step", name);
        if self.rng.percent(1) {
            // The invocation died mid-attempt (out of memory, timeout): Lambda runs it again
            // and the step starts over.
            self.emit(Some(&op), EventDetails::StepStarted);
            self.advance(2_000, 30_000);
            let error = self.crash();
            self.end_invocation(Some(error));
            let due = self.now + self.rng.ms(500, 3_000);
            self.begin_invocation(due);
        }
        let (failures, succeeds) = match plan {
            StepPlan::Succeeds { failures } => (failures, true),
            StepPlan::FailsFor { attempts } => (attempts, false),
        };
        for attempt in 1..=failures {
            self.emit(Some(&op), EventDetails::StepStarted);
            self.work();
            let last = !succeeds && attempt == failures;
            let delay = if last {
                0
            } else {
                let base = 1u64 << (attempt - 1);
                self.rng.between(base, base * 3)
            };
            let error = self.error();
            self.emit(
                Some(&op),
                EventDetails::StepFailed {
                    error: Some(error),
                    retry: Some(RetryDetails {
                        current_attempt: Some(attempt as u32),
                        next_attempt_delay_seconds: Some(delay),
                    }),
                },
            );
            if !last {
                let due = self.now + delay as i64 * 1000;
                self.end_invocation(None);
                self.begin_invocation(due);
            }
        }
        if succeeds {
            self.emit(Some(&op), EventDetails::StepStarted);
            self.work();
            let result = self.payload();
            let retry = (failures > 0).then(|| RetryDetails {
                current_attempt: Some(failures as u32 + 1),
                next_attempt_delay_seconds: None,
            });
            self.emit(Some(&op), EventDetails::StepSucceeded { result, retry });
        }
    }

    /// A step inside a parallel branch or a map iteration: no retries.
    fn quick_step(&mut self, parent: &str, name: String, fails: bool) -> Option<ErrorInfo> {
        let op = self.new_op(Some(parent), "Step", name);
        self.emit(Some(&op), EventDetails::StepStarted);
        self.work();
        if fails {
            let error = self.error();
            self.emit(
                Some(&op),
                EventDetails::StepFailed {
                    error: Some(error.clone()),
                    retry: Some(RetryDetails {
                        current_attempt: Some(1),
                        next_attempt_delay_seconds: Some(0),
                    }),
                },
            );
            Some(error)
        } else {
            let result = self.payload();
            self.emit(
                Some(&op),
                EventDetails::StepSucceeded {
                    result,
                    retry: None,
                },
            );
            None
        }
    }

    /// WaitStarted, the invocation suspends, WaitSucceeded after the duration (when `complete`).
    fn wait(&mut self, parent: Option<&str>, complete: bool) {
        let seconds = *self.rng.pick(WAIT_SECONDS);
        let name = format!("{}-{seconds}s", self.name(WAIT_NAMES));
        let op = self.new_op(parent, "Wait", name);
        let end = self.now + seconds as i64 * 1000;
        self.emit(
            Some(&op),
            EventDetails::WaitStarted {
                duration_seconds: Some(seconds),
                scheduled_end: Some(Timestamp::from_millis(end)),
            },
        );
        self.end_invocation(None);
        if !complete {
            return;
        }
        self.now = self.now.max(end + self.rng.ms(1, 1500));
        self.emit(
            Some(&op),
            EventDetails::WaitSucceeded {
                duration_seconds: Some(seconds),
            },
        );
        self.begin_invocation(self.now);
    }

    fn callback_started(&mut self, op: &OperationRef) -> (i64, Option<u64>, Option<u64>) {
        let timeout = *self.rng.pick(&[None, Some(300), Some(3600), Some(86_400)]);
        let heartbeat = *self.rng.pick(&[None, None, Some(60), Some(300)]);
        let token = format!(
            "{{\"arn\":\"arn:aws:lambda:{REGION}:{ACCOUNT}:function:orders:$LATEST/durable-execution/{}/{}\",\"op\":\"{}\"}}",
            self.exec.name.as_deref().unwrap_or_default(),
            self.exec.id,
            op.id
        );
        self.emit(
            Some(op),
            EventDetails::CallbackStarted {
                callback_id: Some(base64(token.as_bytes())),
                timeout_seconds: timeout,
                heartbeat_timeout_seconds: heartbeat,
            },
        );
        (self.now, timeout, heartbeat)
    }

    /// How long an outside party takes to answer a callback, bounded by its timeouts.
    fn answer_time(&mut self, timeout: Option<u64>, heartbeat: Option<u64>) -> i64 {
        let limit = heartbeat
            .or(timeout)
            .map_or(120_000, |s| (s as i64 * 1000 * 9 / 10).min(120_000));
        self.rng.ms(300, limit.max(301))
    }

    fn callback(&mut self, parent: Option<&str>) {
        let name = self.name(CALLBACK_NAMES);
        let op = self.new_op(parent, "Callback", name);
        let (start, timeout, heartbeat) = self.callback_started(&op);
        self.end_invocation(None);
        let roll = self.rng.below(100);
        let details = if roll < 7 && (timeout.is_some() || heartbeat.is_some()) {
            let (secs, message) = match heartbeat {
                Some(h) => (h, "Callback heartbeat timed out"),
                None => (timeout.unwrap_or(300), "Callback timed out"),
            };
            self.now = self
                .now
                .max(start + secs as i64 * 1000 + self.rng.ms(5, 900));
            EventDetails::CallbackTimedOut {
                error: Some(ErrorInfo {
                    error_type: Some("Callback.Timeout".into()),
                    error_message: Some(message.into()),
                    truncated: !self.payloads,
                    ..ErrorInfo::default()
                }),
            }
        } else {
            let answer = self.answer_time(timeout, heartbeat);
            self.now = self.now.max(start + answer);
            if roll < 18 {
                EventDetails::CallbackFailed {
                    error: Some(ErrorInfo {
                        error_type: Some("Rejected".into()),
                        error_message: Some("rejected by reviewer".into()),
                        error_data: Some("{\"reason\":\"budget\"}".into()),
                        stack_trace: Vec::new(),
                        truncated: !self.payloads,
                    }),
                }
            } else {
                EventDetails::CallbackSucceeded {
                    result: self.payload(),
                }
            }
        };
        self.emit(Some(&op), details);
        self.begin_invocation(self.now);
    }

    /// `wait_for_callback`: a context holding the callback and the step that submits its id.
    fn wait_for_callback(&mut self, parent: Option<&str>) {
        let name = self.name(CALLBACK_NAMES);
        let ctx = self.new_op(parent, "WaitForCallback", name.clone());
        self.emit(Some(&ctx), EventDetails::ContextStarted);
        let cb = self.new_op(
            Some(&ctx.id),
            "Callback",
            format!("{name} create callback id"),
        );
        let (start, timeout, heartbeat) = self.callback_started(&cb);
        self.advance(0, 15);
        let submitter = self.new_op(Some(&ctx.id), "Step", format!("{name} submitter"));
        self.emit(Some(&submitter), EventDetails::StepStarted);
        self.work();
        let result = Some(Payload {
            payload: self.payloads.then(|| "null".to_owned()),
            truncated: !self.payloads,
        });
        self.emit(
            Some(&submitter),
            EventDetails::StepSucceeded {
                result,
                retry: None,
            },
        );
        self.end_invocation(None);
        let answer = self.answer_time(timeout, heartbeat);
        self.now = self.now.max(start + answer);
        let ok = self.rng.percent(90);
        if ok {
            let result = self.payload();
            self.emit(Some(&cb), EventDetails::CallbackSucceeded { result });
        } else {
            let error = self.error();
            self.emit(
                Some(&cb),
                EventDetails::CallbackFailed { error: Some(error) },
            );
        }
        self.begin_invocation(self.now);
        self.advance(0, 8);
        let details = if ok {
            EventDetails::ContextSucceeded {
                result: self.payload(),
            }
        } else {
            EventDetails::ContextFailed {
                error: Some(self.error()),
            }
        };
        self.emit(Some(&ctx), details);
    }

    fn child_context(&mut self, parent: Option<&str>, depth: u32) {
        let name = self.name(CONTEXT_NAMES);
        let ctx = self.new_op(parent, "RunInChildContext", name);
        self.emit(Some(&ctx), EventDetails::ContextStarted);
        let children = self.rng.between(1, 4);
        for _ in 0..children {
            if self.budget == 0 {
                break;
            }
            self.block(Some(&ctx.id), depth + 1);
        }
        self.advance(0, 6);
        let details = if self.rng.percent(97) {
            EventDetails::ContextSucceeded {
                result: self.payload(),
            }
        } else {
            EventDetails::ContextFailed {
                error: Some(self.error()),
            }
        };
        self.emit(Some(&ctx), details);
    }

    /// Plans the members (branches, iterations) of a group: how many steps each holds, within
    /// the budget (the group's own context and each member's context included). At least two
    /// members when the budget has room for five operations.
    fn plan_members(&mut self, count: u64, max_steps: u64) -> Vec<usize> {
        let mut used = 1;
        let mut plan = Vec::new();
        for k in 0..count {
            let wanted = self.rng.between(1, max_steps) as usize;
            // The first member leaves room for a second one (its context and one step).
            let reserve = if k == 0 { 2 } else { 0 };
            let room = self.budget.saturating_sub(used + 1 + reserve);
            if room == 0 {
                break;
            }
            let steps = wanted.min(room);
            used += 1 + steps;
            plan.push(steps);
        }
        plan
    }

    fn parallel(&mut self, parent: Option<&str>) {
        let count = self.rng.between(2, 5);
        let plan = self.plan_members(count, 3);
        let used: usize = 1 + plan.iter().map(|s| 1 + s).sum::<usize>();
        // One branch may wait first, suspending while the others run to completion.
        let waiting_branch =
            (used < self.budget && self.rng.percent(30)).then(|| self.rng.below(plan.len() as u64));
        self.seq += 1;
        let name = format!("fan-out-{}", self.seq);
        let par = self.new_op(parent, "Parallel", name);
        self.emit(Some(&par), EventDetails::ContextStarted);
        let mut done = Vec::new();
        let mut deferred = None;
        for (i, &steps) in plan.iter().enumerate() {
            let branch = self.new_op(
                Some(&par.id),
                "ParallelBranch",
                format!("parallel-branch-{i}"),
            );
            self.emit(Some(&branch), EventDetails::ContextStarted);
            if waiting_branch == Some(i as u64) {
                let seconds = *self.rng.pick(&[1u64, 2, 5, 10, 30]);
                let wait = self.new_op(
                    Some(&branch.id),
                    "Wait",
                    format!("branch-{i}-wait-{seconds}s"),
                );
                let end = self.now + seconds as i64 * 1000;
                self.emit(
                    Some(&wait),
                    EventDetails::WaitStarted {
                        duration_seconds: Some(seconds),
                        scheduled_end: Some(Timestamp::from_millis(end)),
                    },
                );
                deferred = Some((branch, wait, steps, seconds, end));
                continue;
            }
            for _ in 0..steps {
                let step_name = self.name(STEP_NAMES);
                self.quick_step(&branch.id, step_name, false);
            }
            done.push(branch);
        }
        // Branches finish in their own order.
        for i in (1..done.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            done.swap(i, j);
        }
        for branch in done {
            self.advance(0, 3);
            let result = self.payload();
            self.emit(Some(&branch), EventDetails::ContextSucceeded { result });
        }
        if let Some((branch, wait, steps, seconds, end)) = deferred {
            self.end_invocation(None);
            self.now = self.now.max(end + self.rng.ms(1, 1500));
            self.emit(
                Some(&wait),
                EventDetails::WaitSucceeded {
                    duration_seconds: Some(seconds),
                },
            );
            self.begin_invocation(self.now);
            for _ in 0..steps {
                let step_name = self.name(STEP_NAMES);
                self.quick_step(&branch.id, step_name, false);
            }
            self.advance(0, 6);
            let result = self.payload();
            self.emit(Some(&branch), EventDetails::ContextSucceeded { result });
        }
        self.advance(0, 8);
        let result = self.payload();
        self.emit(Some(&par), EventDetails::ContextSucceeded { result });
    }

    fn map(&mut self, parent: Option<&str>) {
        let count = self.rng.between(2, 10);
        let plan = self.plan_members(count, 2);
        self.seq += 1;
        let name = format!("process-items-{}", self.seq);
        let map = self.new_op(parent, "Map", name);
        self.emit(Some(&map), EventDetails::ContextStarted);
        let mut iterations = Vec::new();
        for (i, &steps) in plan.iter().enumerate() {
            let it = self.new_op(Some(&map.id), "MapIteration", format!("map-item-{i}"));
            self.emit(Some(&it), EventDetails::ContextStarted);
            let mut error = None;
            for s in 0..steps {
                let fails = s + 1 == steps && self.rng.percent(4);
                let step_name = self.name(STEP_NAMES);
                error = self.quick_step(&it.id, step_name, fails);
            }
            iterations.push((it, error));
        }
        self.advance(1, 25);
        for (it, error) in iterations {
            let details = match error {
                Some(e) => EventDetails::ContextFailed { error: Some(e) },
                None => EventDetails::ContextSucceeded {
                    result: self.payload(),
                },
            };
            self.emit(Some(&it), details);
        }
        self.advance(0, 10);
        let result = self.payload();
        self.emit(Some(&map), EventDetails::ContextSucceeded { result });
    }

    /// `wait_for_condition`: polls are StepSucceeded with RetryDetails scheduling the next one.
    fn wait_for_condition(&mut self, parent: Option<&str>) {
        let name = self.name(POLL_NAMES);
        let op = self.new_op(parent, "WaitForCondition", name);
        let polls = self.rng.between(1, 5);
        let interval = *self.rng.pick(&[1u64, 2, 5, 10, 30, 60]);
        for attempt in 1..=polls {
            self.emit(Some(&op), EventDetails::StepStarted);
            self.work();
            let state = Payload {
                payload: self
                    .payloads
                    .then(|| format!("{{\"status\":\"IN_PROGRESS\",\"checks\":{attempt}}}")),
                truncated: !self.payloads,
            };
            self.emit(
                Some(&op),
                EventDetails::StepSucceeded {
                    result: Some(state),
                    retry: Some(RetryDetails {
                        current_attempt: Some(attempt as u32),
                        next_attempt_delay_seconds: Some(interval),
                    }),
                },
            );
            let due = self.now + interval as i64 * 1000;
            self.end_invocation(None);
            self.begin_invocation(due);
        }
        self.emit(Some(&op), EventDetails::StepStarted);
        self.work();
        let result = self.payload();
        self.emit(
            Some(&op),
            EventDetails::StepSucceeded {
                result,
                retry: None,
            },
        );
    }

    fn chained_invoke(&mut self, parent: Option<&str>) {
        let service = *self.rng.pick(SERVICES);
        self.seq += 1;
        let name = format!("call-{service}-{}", self.seq);
        let op = self.new_op(parent, "ChainedInvoke", name);
        let durable = self.rng.percent(65);
        let version = self.rng.between(1, 40).to_string();
        let function_name = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{service}:live");
        let child_arn = durable.then(|| {
            format!(
                "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{service}:{version}/durable-execution/{}/{}",
                op.id[..16].to_owned(),
                self.rng.uuid()
            )
        });
        let tenant_id = self
            .rng
            .percent(10)
            .then(|| format!("tenant-{}", self.rng.hex(6)));
        let input = self.payload();
        self.emit(
            Some(&op),
            EventDetails::ChainedInvokeStarted {
                function_name: Some(function_name),
                tenant_id,
                input,
                executed_version: Some(version),
                durable_execution_arn: child_arn,
            },
        );
        let start = self.now;
        self.end_invocation(None);
        let took = if durable {
            self.rng.ms(800, 240_000)
        } else {
            self.rng.ms(30, 4_000)
        };
        self.now = self.now.max(start + took);
        let roll = self.rng.below(100);
        let details = match roll {
            0..86 => EventDetails::ChainedInvokeSucceeded {
                result: self.payload(),
            },
            86..94 => EventDetails::ChainedInvokeFailed {
                error: Some(self.error()),
            },
            94..98 => EventDetails::ChainedInvokeTimedOut {
                error: Some(ErrorInfo {
                    error_type: Some("ChainedInvoke.Timeout".into()),
                    error_message: Some(format!("{service} did not finish in time")),
                    truncated: !self.payloads,
                    ..ErrorInfo::default()
                }),
            },
            _ => EventDetails::ChainedInvokeStopped {
                error: Some(ErrorInfo {
                    error_type: Some("ExecutionStopped".into()),
                    error_message: Some("stopped by operator".into()),
                    truncated: !self.payloads,
                    ..ErrorInfo::default()
                }),
            },
        };
        self.emit(Some(&op), details);
        self.begin_invocation(self.now);
    }

    /// An input or result: JSON text of 50 to 500 bytes, or a truncated marker without data.
    fn payload(&mut self) -> Option<Payload> {
        if !self.payloads {
            return Some(Payload {
                payload: None,
                truncated: true,
            });
        }
        let target = self.rng.between(80, 500) as usize;
        let mut s = String::with_capacity(target + 8);
        s.push_str("{\"orderId\":\"ord-");
        s.push_str(&self.rng.hex(12));
        s.push_str("\",\"customerId\":\"cus-");
        s.push_str(&self.rng.hex(8));
        s.push_str("\",\"status\":\"");
        let status = *self.rng.pick(STATUSES);
        s.push_str(status);
        s.push('"');
        let extras = [
            format!(
                ",\"total\":{{\"amount\":{}.{:02},\"currency\":\"{}\"}}",
                self.rng.between(1, 2500),
                self.rng.below(100),
                self.rng.pick(CURRENCIES)
            ),
            format!(",\"attempt\":{}", self.rng.between(1, 3)),
        ];
        for extra in extras {
            if s.len() + extra.len() + 1 > target {
                break;
            }
            s.push_str(&extra);
        }
        let mut first = true;
        loop {
            let item = format!(
                "{{\"sku\":\"SKU-{}\",\"name\":\"{}\",\"qty\":{}}}",
                self.rng.between(1000, 99_999),
                self.rng.pick(PRODUCTS),
                self.rng.between(1, 6)
            );
            let extra = if first { ",\"items\":[".len() } else { 1 } + item.len() + 2;
            if s.len() + extra > target {
                break;
            }
            s.push_str(if first { ",\"items\":[" } else { "," });
            s.push_str(&item);
            first = false;
        }
        if !first {
            s.push(']');
        }
        s.push('}');
        Some(Payload {
            payload: Some(s),
            truncated: false,
        })
    }

    /// A step's error as the SDKs report it, sometimes with ErrorData and a stack trace.
    fn error(&mut self) -> ErrorInfo {
        let (error_type, message) = *self.rng.pick(STEP_ERRORS);
        let error_data = self.rng.percent(35).then(|| {
            format!(
                "{{\"code\":\"E{}\",\"retryable\":{}}}",
                self.rng.between(1000, 9999),
                self.rng.percent(50)
            )
        });
        let frames = if self.rng.percent(60) {
            self.rng.between(2, 5)
        } else {
            0
        };
        let stack_trace = (0..frames)
            .map(|i| {
                let line = self.rng.between(12, 480);
                let func = self.rng.pick(STEP_NAMES).replace('-', "_");
                if i == 0 {
                    format!("  File \"/var/task/handler.py\", line {line}, in {func}")
                } else {
                    format!("  File \"/var/task/orders/{func}.py\", line {line}, in {func}")
                }
            })
            .collect();
        ErrorInfo {
            error_type: Some(error_type.to_owned()),
            error_message: Some(message.to_owned()),
            error_data,
            stack_trace,
            truncated: !self.payloads,
        }
    }

    /// The error an InvocationCompleted carries when the invocation itself failed.
    fn crash(&mut self) -> ErrorInfo {
        let (error_type, message) = *self.rng.pick(&[
            (
                "Runtime.ExitError",
                "RequestId: exited before completing request: signal: killed",
            ),
            ("Sandbox.Timedout", "Task timed out after 900.00 seconds"),
            (
                "Runtime.OutOfMemory",
                "Runtime exited with error: signal: killed",
            ),
        ]);
        ErrorInfo {
            error_type: Some(error_type.to_owned()),
            error_message: Some(message.to_owned()),
            ..ErrorInfo::default()
        }
    }
}

/// Standard base64 with padding (callback ids are base64 of a small JSON document).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::arn::ExecutionArn;
    use crate::convert::convert;
    use crate::history::KNOWN_EVENT_TYPES;
    use crate::history::json::parse_history;
    use crate::history::json::to_wire_json;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/synth/0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b";

    fn spec(operations: usize, seed: u64) -> SynthSpec {
        SynthSpec {
            operations,
            seed,
            ..SynthSpec::default()
        }
    }

    fn is_execution_event(e: &Event) -> bool {
        matches!(
            e.details,
            EventDetails::ExecutionStarted { .. }
                | EventDetails::ExecutionSucceeded { .. }
                | EventDetails::ExecutionFailed { .. }
                | EventDetails::ExecutionTimedOut { .. }
                | EventDetails::ExecutionStopped { .. }
        )
    }

    fn operation_count(events: &[Event]) -> usize {
        events
            .iter()
            .filter(|e| !is_execution_event(e))
            .filter_map(|e| e.operation.as_ref().map(|r| &*r.id))
            .collect::<HashSet<_>>()
            .len()
    }

    #[test]
    fn same_seed_same_events() {
        for s in [0, 1, 42] {
            assert_eq!(history(&spec(300, s)), history(&spec(300, s)));
        }
    }

    #[test]
    fn different_seeds_different_events() {
        let a = history(&spec(300, 1));
        let b = history(&spec(300, 2));
        assert_ne!(a, b);
        // Not merely shifted: the operation ids differ.
        let ids = |v: &[Event]| {
            v.iter()
                .filter_map(|e| e.operation.as_ref().map(|r| r.id.clone()))
                .collect::<HashSet<_>>()
        };
        assert!(ids(&a).is_disjoint(&ids(&b)));
    }

    #[test]
    fn exactly_the_operations_asked_for() {
        for n in [0, 1, 2, 3, 4, 5, 6, 17, 100, 999] {
            for seed in 0..4 {
                for finished in [true, false] {
                    let s = SynthSpec {
                        finished,
                        ..spec(n, seed)
                    };
                    let events = history(&s);
                    assert_eq!(operation_count(&events), n, "n={n} seed={seed} {finished}");
                }
            }
        }
    }

    #[test]
    fn the_maximum_history_is_three_thousand_operations() {
        for seed in 0..3 {
            let events = history(&spec(MAX_OPERATIONS, seed));
            assert_eq!(operation_count(&events), MAX_OPERATIONS);
            assert!(
                (7_000..=10_000).contains(&events.len()),
                "seed {seed}: {} events",
                events.len()
            );
        }
    }

    #[test]
    fn shape_ids_times_and_ends() {
        for finished in [true, false] {
            let events = history(&SynthSpec {
                finished,
                ..spec(500, 9)
            });
            assert!(matches!(
                events[0].details,
                EventDetails::ExecutionStarted { .. }
            ));
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.id, i as u64 + 1);
                assert!(!e.details.is_unknown());
                if i > 0 {
                    assert!(e.timestamp >= events[i - 1].timestamp, "event {}", e.id);
                }
                if let Some(r) = &e.operation
                    && !is_execution_event(e)
                {
                    assert_eq!(r.id.len(), 64);
                    assert!(r.id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
                    assert!(r.sub_type.is_some() && r.name.is_some());
                }
            }
            let last = events.last().unwrap();
            assert_eq!(is_execution_event(last), finished);
            if !finished {
                assert!(matches!(
                    last.details,
                    EventDetails::InvocationCompleted { .. }
                ));
            }
        }
    }

    #[test]
    fn the_mix_is_realistic() {
        let events = history(&spec(MAX_OPERATIONS, 5));
        let mut types: HashMap<&str, usize> = HashMap::new();
        let mut sub_types: HashSet<&str> = HashSet::new();
        for e in &events {
            *types.entry(e.details.event_type()).or_default() += 1;
            if let Some(st) = e.operation.as_ref().and_then(|r| r.sub_type.as_deref()) {
                sub_types.insert(st);
            }
        }
        for st in [
            "Step",
            "Wait",
            "Callback",
            "RunInChildContext",
            "Parallel",
            "ParallelBranch",
            "Map",
            "MapIteration",
            "WaitForCallback",
            "WaitForCondition",
            "ChainedInvoke",
        ] {
            assert!(sub_types.contains(st), "{st}");
        }
        for t in [
            "StepFailed",
            "CallbackFailed",
            "CallbackTimedOut",
            "ContextFailed",
            "ChainedInvokeFailed",
            "ChainedInvokeSucceeded",
        ] {
            assert!(types.contains_key(t), "{t}");
        }
        // Steps dominate: most operations are plain steps, and steps write most events.
        let plain_steps = events
            .iter()
            .filter(|e| matches!(e.details, EventDetails::StepStarted))
            .filter_map(|e| e.operation.as_ref())
            .filter(|r| r.sub_type.as_deref() == Some("Step"))
            .map(|r| &*r.id)
            .collect::<HashSet<_>>();
        assert!(
            plain_steps.len() * 2 > MAX_OPERATIONS,
            "{}",
            plain_steps.len()
        );
        let step_events = types["StepStarted"] + types["StepSucceeded"] + types["StepFailed"];
        assert!(step_events * 2 > events.len());
        // Retries back off by whole seconds; polls too.
        assert!(events.iter().any(|e| matches!(
            &e.details,
            EventDetails::StepFailed { retry: Some(r), .. } if r.schedules_another_attempt()
        )));
        assert!(events.iter().any(|e| matches!(
            &e.details,
            EventDetails::StepSucceeded { retry: Some(r), .. } if r.schedules_another_attempt()
        )));
        // Every InvocationCompleted carries the real service's details.
        for e in &events {
            if let EventDetails::InvocationCompleted {
                start,
                end,
                request_id,
                ..
            } = &e.details
            {
                assert!(start.is_some() && end.is_some() && request_id.is_some());
                assert!(start <= end && end.unwrap() <= e.timestamp);
            }
        }
        // Payload sizes.
        for e in &events {
            if let Some(p) = e.details.result().and_then(|p| p.payload.as_ref())
                && p != "null"
                && !p.starts_with("{\"status\"")
            {
                assert!((50..=500).contains(&p.len()), "{} bytes", p.len());
                serde_json::from_str::<serde_json::Value>(p).unwrap();
            }
        }
    }

    #[test]
    fn wire_json_round_trips() {
        for (n, seed, include_payloads, finished) in [
            (0, 0, true, true),
            (0, 0, true, false),
            (1, 3, false, true),
            (50, 4, true, false),
            (400, 5, false, true),
            (MAX_OPERATIONS, 6, true, true),
        ] {
            let events = history(&SynthSpec {
                operations: n,
                seed,
                include_payloads,
                finished,
                ..SynthSpec::default()
            });
            let json = to_wire_json(&events, None);
            let parsed = parse_history(json.as_bytes()).unwrap();
            assert_eq!(parsed.pages, 1);
            assert_eq!(parsed.duplicates, 0);
            assert_eq!(parsed.next_marker, None);
            assert_eq!(parsed.events, events, "n={n} seed={seed}");
        }
    }

    #[test]
    fn wire_json_shape() {
        let events = history(&spec(40, 11));
        let json = to_wire_json(&events, Some("41"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["NextMarker"], "41");
        let first = &v["Events"][0];
        assert_eq!(first["EventType"], "ExecutionStarted");
        assert_eq!(first["EventId"], 1);
        assert!(first["EventTimestamp"].is_f64() || first["EventTimestamp"].is_u64());
        assert!(first["ExecutionStartedDetails"]["Input"]["Payload"].is_string());
        assert!(first["ExecutionStartedDetails"]["ExecutionTimeout"].is_u64());
        assert!(first.get("ParentId").is_none() && first.get("SubType").is_none());
        assert!(json.starts_with("{\"Events\":[{\"EventType\":\"ExecutionStarted\",\"EventTimestamp\":1795248229.114,\"EventId\":1,\"Id\":"));
        let parsed = parse_history(json.as_bytes()).unwrap();
        assert_eq!(parsed.next_marker.as_deref(), Some("41"));
        assert_eq!(parsed.events, events);
    }

    /// One event of every known type, every field set, plus an unknown type.
    #[test]
    fn every_event_type_round_trips() {
        let err = ErrorInfo {
            error_type: Some("E".into()),
            error_message: Some("line 1\nline \"2\" \u{1F600}".into()),
            error_data: Some("{\"a\":1}".into()),
            stack_trace: vec!["at a".into(), "at b".into()],
            truncated: true,
        };
        let p = Some(Payload {
            payload: Some("{\"k\":\"v\\u0000\"}".into()),
            truncated: false,
        });
        let ts = Timestamp::from_millis(1_795_248_229_436);
        let mut events = Vec::new();
        for (i, t) in KNOWN_EVENT_TYPES
            .iter()
            .chain(["ExecutionPaused"].iter())
            .enumerate()
        {
            use EventDetails as D;
            let details = match EventDetails::empty(t) {
                D::ExecutionStarted { .. } => D::ExecutionStarted {
                    input: p.clone(),
                    execution_timeout_seconds: Some(3600),
                },
                D::ExecutionSucceeded { .. } => D::ExecutionSucceeded { result: p.clone() },
                D::ContextSucceeded { .. } => D::ContextSucceeded { result: p.clone() },
                D::ChainedInvokeSucceeded { .. } => D::ChainedInvokeSucceeded { result: p.clone() },
                D::CallbackSucceeded { .. } => D::CallbackSucceeded { result: p.clone() },
                D::StepSucceeded { .. } => D::StepSucceeded {
                    result: p.clone(),
                    retry: Some(RetryDetails {
                        current_attempt: Some(2),
                        next_attempt_delay_seconds: Some(5),
                    }),
                },
                D::StepFailed { .. } => D::StepFailed {
                    error: Some(err.clone()),
                    retry: Some(RetryDetails {
                        current_attempt: Some(1),
                        next_attempt_delay_seconds: Some(0),
                    }),
                },
                D::ExecutionFailed { .. } => D::ExecutionFailed {
                    error: Some(err.clone()),
                },
                D::ExecutionTimedOut { .. } => D::ExecutionTimedOut {
                    error: Some(err.clone()),
                },
                D::ExecutionStopped { .. } => D::ExecutionStopped {
                    error: Some(err.clone()),
                },
                D::ContextFailed { .. } => D::ContextFailed {
                    error: Some(err.clone()),
                },
                D::WaitCancelled { .. } => D::WaitCancelled {
                    error: Some(err.clone()),
                },
                D::ChainedInvokeFailed { .. } => D::ChainedInvokeFailed {
                    error: Some(err.clone()),
                },
                D::ChainedInvokeTimedOut { .. } => D::ChainedInvokeTimedOut {
                    error: Some(err.clone()),
                },
                D::ChainedInvokeStopped { .. } => D::ChainedInvokeStopped {
                    error: Some(err.clone()),
                },
                D::CallbackFailed { .. } => D::CallbackFailed {
                    error: Some(err.clone()),
                },
                D::CallbackTimedOut { .. } => D::CallbackTimedOut {
                    error: Some(err.clone()),
                },
                D::WaitStarted { .. } => D::WaitStarted {
                    duration_seconds: Some(30),
                    scheduled_end: Some(Timestamp::from_millis(1_795_248_259_436)),
                },
                D::WaitSucceeded { .. } => D::WaitSucceeded {
                    duration_seconds: Some(30),
                },
                D::ChainedInvokeStarted { .. } => D::ChainedInvokeStarted {
                    function_name: Some("fn".into()),
                    tenant_id: Some("t".into()),
                    input: p.clone(),
                    executed_version: Some("3".into()),
                    durable_execution_arn: Some("a/b".into()),
                },
                D::CallbackStarted { .. } => D::CallbackStarted {
                    callback_id: Some("cb".into()),
                    timeout_seconds: Some(60),
                    heartbeat_timeout_seconds: Some(10),
                },
                D::InvocationCompleted { .. } => D::InvocationCompleted {
                    start: Some(Timestamp::from_millis(1_795_248_229_000)),
                    end: Some(ts),
                    request_id: Some("r".into()),
                    error: Some(err.clone()),
                },
                other => other,
            };
            let operation = (i % 3 != 0).then(|| OperationRef {
                id: format!("op-{i}").into(),
                name: (i % 2 == 0).then(|| format!("name-{i}").into()),
                parent_id: (i % 4 == 1).then(|| "parent".into()),
                sub_type: Some("Step".into()),
            });
            events.push(Event {
                id: i as u64 + 1,
                timestamp: Timestamp::from_millis(ts.millis() + i as i64 * 7),
                operation,
                details,
            });
        }
        // The same types with every optional field absent.
        let n = events.len();
        for (i, t) in KNOWN_EVENT_TYPES.iter().enumerate() {
            events.push(Event {
                id: (n + i) as u64 + 1,
                timestamp: Timestamp::from_millis(1_795_248_230_000),
                operation: None,
                details: EventDetails::empty(t),
            });
        }
        let json = to_wire_json(&events, None);
        assert!(json.contains("\"InvocationCompletedDetails\":{\"StartTimestamp\":1795248229,\"EndTimestamp\":1795248229.436,\"RequestId\":\"r\",\"Error\":{"));
        assert!(json.contains("{\"EventType\":\"ExecutionPaused\",\"EventTimestamp\":"));
        assert!(!json.contains("ExecutionPausedDetails"));
        assert_eq!(parse_history(json.as_bytes()).unwrap().events, events);
    }

    /// Real histories from AWS's emulator survive the trip through our writer.
    #[test]
    fn emulator_fixtures_round_trip() {
        for name in [
            "parallel-map",
            "callbacks",
            "chained-invoke",
            "child-contexts",
        ] {
            for data in ["true", "false"] {
                let path = format!(
                    "{}/tests/fixtures/emulator/{name}/history_IncludeExecutionData_{data}.json",
                    env!("CARGO_MANIFEST_DIR")
                );
                let bytes = std::fs::read(&path).unwrap();
                let events = parse_history(&bytes).unwrap().events;
                let json = to_wire_json(&events, None);
                assert_eq!(
                    parse_history(json.as_bytes()).unwrap().events,
                    events,
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn converts_without_anomalies_into_one_well_formed_trace() {
        let arn = ExecutionArn::parse(ARN).unwrap();
        for (n, seed, finished) in [
            (1, 0, true),
            (25, 1, true),
            (300, 2, true),
            (MAX_OPERATIONS, 3, true),
            (300, 4, false),
        ] {
            let events = history(&SynthSpec {
                finished,
                ..spec(n, seed)
            });
            let conversion = convert(&events, &arn, None, Default::default());
            assert!(
                conversion.anomalies.is_empty(),
                "n={n} seed={seed}: {:?}",
                &conversion.anomalies[..conversion.anomalies.len().min(5)]
            );
            let spans = &conversion.spans;
            let ids: HashSet<_> = spans.iter().map(|s| s.span_id).collect();
            assert_eq!(ids.len(), spans.len(), "span ids are unique");
            if !finished {
                // Running: no Workflow span yet, and the open wait has none either.
                assert!(spans.iter().all(|s| s.name != "Workflow"));
                continue;
            }
            let roots: Vec<_> = spans
                .iter()
                .filter(|s| s.parent_span_id.is_none())
                .collect();
            assert_eq!(roots.len(), 1, "n={n} seed={seed}");
            assert_eq!(roots[0].name, "Workflow");
            for s in spans {
                if let Some(p) = s.parent_span_id {
                    assert!(ids.contains(&p), "{} has no parent span", s.name);
                }
            }
            // Every operation has its span.
            assert!(spans.len() > n);
        }
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
