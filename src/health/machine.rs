//! The rise/fall state machine of one probed endpoint: pure, no clock, no I/O.
//!
//! An endpoint starts [`State::Unknown`], which the answer table treats as usable, so a
//! restart never blackholes traffic while the first probes are in flight. The first result
//! decides at once (Up or Down); after that, `fall` consecutive failures take an Up
//! endpoint down and `rise` consecutive passes bring a Down one back. A single lost probe
//! therefore never moves traffic.

use serde::{Deserialize, Serialize};

/// Health of an endpoint or a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No probe result yet: answered as if up.
    Unknown,
    Up,
    Down,
}

impl State {
    /// Whether answers may include it.
    pub fn is_usable(self) -> bool {
        self != State::Down
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }
}

/// Counts consecutive results against the thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    state: State,
    /// Consecutive results that disagree with `state`.
    streak: u32,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    pub fn new() -> Self {
        Self {
            state: State::Unknown,
            streak: 0,
        }
    }

    /// A machine resumed at a known state, e.g. the last one saved before a restart:
    /// it then needs a full `rise` or `fall` run to change, like any other.
    pub fn resumed(state: State) -> Self {
        Self { state, streak: 0 }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Consecutive results so far that disagree with the state (towards `rise` or `fall`).
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// Feeds one probe result; returns the new state if it changed.
    pub fn observe(&mut self, passed: bool, rise: u32, fall: u32) -> Option<State> {
        let next = match (self.state, passed) {
            (State::Unknown, true) => State::Up,
            (State::Unknown, false) => State::Down,
            (State::Up, true) | (State::Down, false) => {
                self.streak = 0;
                return None;
            }
            (State::Up, false) => self.count(fall, State::Down)?,
            (State::Down, true) => self.count(rise, State::Up)?,
        };
        self.state = next;
        self.streak = 0;
        Some(next)
    }

    fn count(&mut self, threshold: u32, to: State) -> Option<State> {
        self.streak += 1;
        (self.streak >= threshold.max(1)).then_some(to)
    }
}

/// A target is up while any of its endpoints is up; unknown while none is up and some
/// have no result yet; down when every endpoint is down.
pub fn target_state(endpoints: impl IntoIterator<Item = State>) -> State {
    let mut any_unknown = false;
    let mut any = false;
    for s in endpoints {
        any = true;
        match s {
            State::Up => return State::Up,
            State::Unknown => any_unknown = true,
            State::Down => {}
        }
    }
    if any_unknown || !any {
        State::Unknown
    } else {
        State::Down
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_result_decides_at_once() {
        let mut m = Machine::new();
        assert_eq!(m.observe(false, 2, 3), Some(State::Down));
        let mut m = Machine::new();
        assert_eq!(m.observe(true, 2, 3), Some(State::Up));
    }

    #[test]
    fn fall_consecutive_failures_take_it_down() {
        let mut m = Machine::new();
        m.observe(true, 2, 3);
        assert_eq!(m.observe(false, 2, 3), None);
        assert_eq!(m.observe(false, 2, 3), None);
        assert_eq!(m.observe(false, 2, 3), Some(State::Down));
    }

    #[test]
    fn a_pass_resets_the_failure_streak() {
        let mut m = Machine::new();
        m.observe(true, 2, 2);
        m.observe(false, 2, 2);
        m.observe(true, 2, 2);
        assert_eq!(m.observe(false, 2, 2), None);
        assert_eq!(m.state(), State::Up);
        assert_eq!(m.observe(false, 2, 2), Some(State::Down));
    }

    #[test]
    fn rise_consecutive_passes_bring_it_back() {
        let mut m = Machine::new();
        m.observe(false, 3, 1);
        assert_eq!(m.observe(true, 3, 1), None);
        assert_eq!(m.observe(false, 3, 1), None);
        assert_eq!(m.observe(true, 3, 1), None);
        assert_eq!(m.observe(true, 3, 1), None);
        assert_eq!(m.observe(true, 3, 1), Some(State::Up));
    }

    #[test]
    fn target_state_combines_endpoints() {
        use State::*;
        assert_eq!(target_state([Down, Up]), Up);
        assert_eq!(target_state([Down, Unknown]), Unknown);
        assert_eq!(target_state([Down, Down]), Down);
        assert_eq!(target_state([]), Unknown);
    }

    proptest! {
        /// Whatever the sequence, after the first result the state only changes after a
        /// run of at least `fall` failures or `rise` passes: the machine never flaps on
        /// fewer.
        #[test]
        fn never_changes_on_a_short_run(
            results in proptest::collection::vec(any::<bool>(), 1..200),
            rise in 1u32..5,
            fall in 1u32..5,
        ) {
            let mut m = Machine::new();
            let mut run = 0u32;
            let mut last: Option<bool> = None;
            for (i, &r) in results.iter().enumerate() {
                run = if last == Some(r) { run + 1 } else { 1 };
                last = Some(r);
                let changed = m.observe(r, rise, fall);
                if i == 0 {
                    prop_assert!(changed.is_some());
                    continue;
                }
                if let Some(to) = changed {
                    let need = if to == State::Up { rise } else { fall };
                    prop_assert!(run >= need, "changed to {to:?} after a run of {run} < {need}");
                    prop_assert_eq!(to == State::Up, r);
                }
                // The state always agrees with a run that reached its threshold.
                if r && run >= rise { prop_assert_eq!(m.state(), State::Up); }
                if !r && run >= fall { prop_assert_eq!(m.state(), State::Down); }
            }
        }
    }
}
