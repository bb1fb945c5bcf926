//! The two key slots of a domain and the rotation state machine.
//!
//! Every key in a slot is published. Exactly one key signs at any instant (if there is a key at
//! all). A rotation puts a new key in the empty slot, `AwaitingSwitch` until its `RotateOnDate`
//! has passed **and** verifiers can see it; then it signs and the old key is `Retiring` for the
//! retention period, still published for mail in flight, and finally leaves its slot.
//!
//! Everything here is a pure function of the slots, the policy and `now`; whether the new key is
//! visible is an observation the caller makes (a DNS lookup) and passes in.

use std::fmt;
use std::fmt::Write as _;

use crate::material::PublicKey;
use crate::spec::Slot;
use crate::time::{Span, Timestamp};

/// A key's stable identifier, also the sealing context of its private half.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl KeyId {
    /// A random 128-bit identifier.
    pub fn random() -> KeyId {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes).expect("the OS random source is available");
        KeyId(bytes.iter().fold(String::with_capacity(32), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        }))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a published key is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs all mail of the domain.
    Signing,
    /// Published; takes over once `rotate_on` has passed and verifiers can see it.
    AwaitingSwitch { rotate_on: Timestamp },
    /// No longer signs; stays published until `until` for mail still in flight.
    Retiring { until: Timestamp },
}

/// A key occupying a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotKey {
    pub id: KeyId,
    pub public: PublicKey,
    pub created: Timestamp,
    pub state: KeyState,
}

/// The rotation timings of an installation (and, for the interval, of a domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// From `rotate` to the earliest switch-over (`RotateOnDate`). Default 96 hours.
    pub delay: Span,
    /// How long a replaced key stays published after the switch. Default 7 days.
    pub retention: Span,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            delay: Span::hours(96),
            retention: Span::days(7),
        }
    }
}

/// The shortest automatic rotation interval accepted.
pub const MINIMUM_ROTATION_INTERVAL: Span = Span::days(5);

/// Why a rotation cannot start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationRefused {
    #[error(
        "a rotation is already in progress: {slot} takes over on or after {rotate_on}; wait until it has switched and the old key has retired"
    )]
    InProgress { slot: Slot, rotate_on: Timestamp },
    #[error(
        "the previous key in {slot} is still published for mail in flight until {until}; rotate again after that"
    )]
    Retiring { slot: Slot, until: Timestamp },
    #[error("there is no key to rotate from; create one with `signet dkim new`")]
    NoKey,
}

/// Something that happened to the slots during [`Slots::advance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    SwitchedOver { from: Slot, to: Slot },
    Retired { slot: Slot, key: KeyId },
}

/// The two slots of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    selector1: Option<SlotKey>,
    selector2: Option<SlotKey>,
}

impl Slots {
    /// Slots holding a single key in `selector1`, signing from now on.
    pub fn with_first_key(id: KeyId, public: PublicKey, now: Timestamp) -> Slots {
        Slots {
            selector1: Some(SlotKey {
                id,
                public,
                created: now,
                state: KeyState::Signing,
            }),
            selector2: None,
        }
    }

    /// Rebuilds slots from storage. Refuses combinations the state machine never produces.
    pub fn from_parts(
        selector1: Option<SlotKey>,
        selector2: Option<SlotKey>,
    ) -> Result<Slots, String> {
        let slots = Slots {
            selector1,
            selector2,
        };
        let signing = slots
            .iter()
            .filter(|(_, k)| k.state == KeyState::Signing)
            .count();
        let keys = slots.iter().count();
        if keys > 0 && signing != 1 {
            return Err(format!(
                "{keys} key(s) but {signing} signing; exactly one must sign"
            ));
        }
        Ok(slots)
    }

    pub fn get(&self, slot: Slot) -> Option<&SlotKey> {
        match slot {
            Slot::Selector1 => self.selector1.as_ref(),
            Slot::Selector2 => self.selector2.as_ref(),
        }
    }

    fn get_mut(&mut self, slot: Slot) -> &mut Option<SlotKey> {
        match slot {
            Slot::Selector1 => &mut self.selector1,
            Slot::Selector2 => &mut self.selector2,
        }
    }

    /// Every key present, all of which are published.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &SlotKey)> {
        Slot::BOTH
            .into_iter()
            .filter_map(|slot| self.get(slot).map(|key| (slot, key)))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The slot whose key signs now.
    pub fn signing(&self) -> Option<(Slot, &SlotKey)> {
        self.iter().find(|(_, key)| key.state == KeyState::Signing)
    }

    /// The slot waiting to take over, with its `RotateOnDate`.
    pub fn awaiting(&self) -> Option<(Slot, Timestamp)> {
        self.iter().find_map(|(slot, key)| match key.state {
            KeyState::AwaitingSwitch { rotate_on } => Some((slot, rotate_on)),
            _ => None,
        })
    }

    /// The slot that would switch now if its key were visible: the caller checks visibility for
    /// this one only.
    pub fn switch_due(&self, now: Timestamp) -> Option<Slot> {
        self.awaiting()
            .filter(|(_, rotate_on)| *rotate_on <= now)
            .map(|(slot, _)| slot)
    }

    /// Starts a rotation: `key` goes into the free slot and may sign from `now + delay`.
    pub fn begin_rotation(
        &self,
        id: KeyId,
        public: PublicKey,
        now: Timestamp,
        delay: Span,
    ) -> Result<(Slots, Slot), RotationRefused> {
        let (current, _) = self.signing().ok_or(RotationRefused::NoKey)?;
        let next = current.other();
        match self.get(next).map(|k| k.state) {
            Some(KeyState::AwaitingSwitch { rotate_on }) => {
                return Err(RotationRefused::InProgress {
                    slot: next,
                    rotate_on,
                });
            }
            Some(KeyState::Retiring { until }) => {
                return Err(RotationRefused::Retiring { slot: next, until });
            }
            Some(KeyState::Signing) => unreachable!("only one slot signs"),
            None => {}
        }
        let mut slots = self.clone();
        let rotate_on = now.plus(delay);
        *slots.get_mut(next) = Some(SlotKey {
            id,
            public,
            created: now,
            state: KeyState::AwaitingSwitch { rotate_on },
        });
        Ok((slots, next))
    }

    /// True when automatic rotation with `interval` should start a rotation now.
    pub fn automatic_rotation_due(&self, interval: Span, now: Timestamp) -> bool {
        let idle = self.iter().count() == 1;
        idle && self
            .signing()
            .is_some_and(|(_, key)| key.created.plus(interval) <= now)
    }

    /// Moves time forward to `now`. `new_key_visible` says whether the key of
    /// [`Slots::switch_due`] was seen by a resolver as verifiers will see it.
    #[must_use]
    pub fn advance(
        &self,
        policy: &RotationPolicy,
        now: Timestamp,
        new_key_visible: bool,
    ) -> (Slots, Vec<Transition>) {
        let mut slots = self.clone();
        let mut transitions = Vec::new();
        for slot in Slot::BOTH {
            let Some(key) = slots.get(slot) else { continue };
            if let KeyState::Retiring { until } = key.state
                && until <= now
            {
                transitions.push(Transition::Retired {
                    slot,
                    key: key.id.clone(),
                });
                *slots.get_mut(slot) = None;
            }
        }
        if let Some(next) = slots.switch_due(now)
            && new_key_visible
        {
            let from = next.other();
            if let Some(old) = slots.get_mut(from).as_mut() {
                old.state = KeyState::Retiring {
                    until: now.plus(policy.retention),
                };
            }
            if let Some(new) = slots.get_mut(next).as_mut() {
                new.state = KeyState::Signing;
            }
            transitions.push(Transition::SwitchedOver { from, to: next });
        }
        (slots, transitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{KeySpec, RsaBits};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn public(n: u8) -> PublicKey {
        PublicKey {
            spec: KeySpec::Rsa(RsaBits::B2048),
            bytes: vec![n],
        }
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_unix(seconds)
    }

    const POLICY: RotationPolicy = RotationPolicy {
        delay: Span::seconds_from(100),
        retention: Span::seconds_from(50),
    };

    #[test]
    fn a_full_rotation_alternates_slots() {
        let slots = Slots::with_first_key(KeyId("a".into()), public(1), t(0));
        assert_eq!(slots.signing().unwrap().0, Slot::Selector1);

        let (slots, next) = slots
            .begin_rotation(KeyId("b".into()), public(2), t(10), POLICY.delay)
            .unwrap();
        assert_eq!(next, Slot::Selector2);
        assert_eq!(slots.awaiting(), Some((Slot::Selector2, t(110))));

        // Before RotateOnDate nothing switches, even if visible.
        let (slots, done) = slots.advance(&POLICY, t(109), true);
        assert!(done.is_empty());
        // After it, nothing switches while the key is not visible.
        let (slots, done) = slots.advance(&POLICY, t(200), false);
        assert!(done.is_empty());
        assert_eq!(slots.signing().unwrap().0, Slot::Selector1);

        let (slots, done) = slots.advance(&POLICY, t(300), true);
        assert_eq!(
            done,
            [Transition::SwitchedOver {
                from: Slot::Selector1,
                to: Slot::Selector2
            }]
        );
        assert_eq!(
            slots.get(Slot::Selector1).unwrap().state,
            KeyState::Retiring { until: t(350) }
        );

        let (slots, done) = slots.advance(&POLICY, t(349), true);
        assert!(done.is_empty() && slots.get(Slot::Selector1).is_some());
        let (slots, done) = slots.advance(&POLICY, t(350), true);
        assert_eq!(
            done,
            [Transition::Retired {
                slot: Slot::Selector1,
                key: KeyId("a".into())
            }]
        );

        // The next rotation goes back to selector1.
        let (_, next) = slots
            .begin_rotation(KeyId("c".into()), public(3), t(400), POLICY.delay)
            .unwrap();
        assert_eq!(next, Slot::Selector1);
    }

    #[test]
    fn a_second_rotation_is_refused_while_one_is_under_way() {
        let slots = Slots::with_first_key(KeyId("a".into()), public(1), t(0));
        let (slots, _) = slots
            .begin_rotation(KeyId("b".into()), public(2), t(0), POLICY.delay)
            .unwrap();
        let err = slots
            .begin_rotation(KeyId("c".into()), public(3), t(1), POLICY.delay)
            .unwrap_err();
        assert_eq!(
            err,
            RotationRefused::InProgress {
                slot: Slot::Selector2,
                rotate_on: t(100)
            }
        );
        let (slots, _) = slots.advance(&POLICY, t(100), true);
        let err = slots
            .begin_rotation(KeyId("c".into()), public(3), t(101), POLICY.delay)
            .unwrap_err();
        assert_eq!(
            err,
            RotationRefused::Retiring {
                slot: Slot::Selector1,
                until: t(150)
            }
        );
        assert_eq!(
            Slots::default().begin_rotation(KeyId("x".into()), public(0), t(0), POLICY.delay),
            Err(RotationRefused::NoKey)
        );
    }

    #[test]
    fn automatic_rotation_waits_for_the_interval_and_an_idle_slot() {
        let slots = Slots::with_first_key(KeyId("a".into()), public(1), t(0));
        assert!(!slots.automatic_rotation_due(Span::seconds_from(1000), t(999)));
        assert!(slots.automatic_rotation_due(Span::seconds_from(1000), t(1000)));
        let (busy, _) = slots
            .begin_rotation(KeyId("b".into()), public(2), t(1000), POLICY.delay)
            .unwrap();
        assert!(!busy.automatic_rotation_due(Span::seconds_from(1000), t(5000)));
    }

    #[test]
    fn storage_cannot_hold_two_signers() {
        let key = |id: &str, state| SlotKey {
            id: KeyId(id.into()),
            public: public(0),
            created: t(0),
            state,
        };
        assert!(
            Slots::from_parts(
                Some(key("a", KeyState::Signing)),
                Some(key("b", KeyState::Signing))
            )
            .is_err()
        );
        let retiring = KeyState::Retiring { until: t(5) };
        assert!(Slots::from_parts(Some(key("a", retiring)), None).is_err());
        assert!(Slots::from_parts(None, None).is_ok());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Wait(i64),
        Rotate,
        Tick { visible: bool },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0i64..200).prop_map(Step::Wait),
            Just(Step::Rotate),
            any::<bool>().prop_map(|visible| Step::Tick { visible }),
        ]
    }

    proptest! {
        /// Over any sequence of waits, rotations and scheduler passes with any visibility:
        /// exactly one key signs; a key signs only after its RotateOnDate and after it was seen;
        /// a replaced key stays published for the whole retention period.
        #[test]
        fn rotation_invariants(steps in proptest::collection::vec(step(), 1..60)) {
            let mut now = t(0);
            let mut slots = Slots::with_first_key(KeyId("k0".into()), public(0), now);
            let mut next_id = 1;
            let mut seen_at: HashMap<KeyId, Timestamp> = HashMap::new();
            let mut rotate_on: HashMap<KeyId, Timestamp> = HashMap::new();
            let mut switched_at: HashMap<KeyId, Timestamp> = HashMap::new();
            for step in steps {
                match step {
                    Step::Wait(seconds) => now = now.plus(Span::seconds_from(seconds)),
                    Step::Rotate => {
                        let id = KeyId(format!("k{next_id}"));
                        next_id += 1;
                        if let Ok((next, slot)) = slots.begin_rotation(id.clone(), public(0), now, POLICY.delay) {
                            prop_assert_eq!(next.get(slot).unwrap().id.clone(), id.clone());
                            rotate_on.insert(id, now.plus(POLICY.delay));
                            slots = next;
                        }
                    }
                    Step::Tick { visible } => {
                        if visible && let Some(slot) = slots.switch_due(now) {
                            seen_at.insert(slots.get(slot).unwrap().id.clone(), now);
                        }
                        let before = slots.clone();
                        let (next, transitions) = slots.advance(&POLICY, now, visible);
                        for transition in &transitions {
                            match transition {
                                Transition::SwitchedOver { from, .. } => {
                                    switched_at.insert(before.get(*from).unwrap().id.clone(), now);
                                }
                                Transition::Retired { key, .. } => {
                                    let since = switched_at[key];
                                    prop_assert!(now >= since.plus(POLICY.retention), "retired early");
                                }
                            }
                        }
                        // Any key replaced less than `retention` ago is still published.
                        for (id, at) in &switched_at {
                            if now < at.plus(POLICY.retention) {
                                prop_assert!(next.iter().any(|(_, k)| &k.id == id), "{} withdrawn early", id);
                            }
                        }
                        slots = next;
                    }
                }
                let signers = slots.iter().filter(|(_, k)| k.state == KeyState::Signing).count();
                prop_assert_eq!(signers, 1);
                let (_, signer) = slots.signing().unwrap();
                if let Some(on) = rotate_on.get(&signer.id) {
                    prop_assert!(now >= *on, "signing before RotateOnDate");
                    prop_assert!(seen_at.contains_key(&signer.id), "signing before it was seen");
                }
            }
        }
    }
}
