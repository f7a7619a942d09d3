//! A few slots shared fairly between client addresses: waiters are served one address at a time in
//! turn (round robin), each address's own waiters first come, first served. A flood from some
//! addresses then delays a newcomer from another address by about one turn, not by the whole
//! flood, which a single first-come-first-served queue would make it wait out. Used for the bcrypt
//! verifications of basic authentication.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::sync::lock;

/// Slots handed out in turn between addresses.
#[derive(Clone)]
pub struct FairSlots {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    /// Addresses with waiters, in the order they get their next turn.
    turns: VecDeque<IpAddr>,
    waiting: HashMap<IpAddr, VecDeque<oneshot::Sender<Slot>>>,
}

/// One slot, given back when dropped.
pub struct Slot {
    /// `None` once handed back (a slot whose waiter had gone).
    state: Option<Arc<Mutex<State>>>,
}

impl FairSlots {
    pub fn new(slots: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: slots,
                turns: VecDeque::new(),
                waiting: HashMap::new(),
            })),
        }
    }

    /// A slot for a request from `address`, once it is this address's turn.
    pub async fn acquire(&self, address: IpAddr) -> Slot {
        let receiver = {
            let mut state = lock(&self.state);
            if state.free > 0 && state.turns.is_empty() {
                state.free -= 1;
                return Slot {
                    state: Some(Arc::clone(&self.state)),
                };
            }
            let (sender, receiver) = oneshot::channel();
            let queue = state.waiting.entry(address).or_default();
            if queue.is_empty() {
                state.turns.push_back(address);
            }
            state
                .waiting
                .get_mut(&address)
                .expect("the queue was just made")
                .push_back(sender);
            receiver
        };
        receiver
            .await
            .expect("a waiter's sender is kept in the state until a slot is sent to it")
    }
}

impl Drop for Slot {
    /// Hands the slot to the next address in turn, or frees it.
    fn drop(&mut self) {
        let Some(shared) = self.state.take() else {
            return;
        };
        let mut state = lock(&shared);
        while let Some(address) = state.turns.pop_front() {
            let Some(queue) = state.waiting.get_mut(&address) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                state.waiting.remove(&address);
            } else {
                state.turns.push_back(address);
            }
            if let Some(sender) = next {
                let slot = Slot {
                    state: Some(Arc::clone(&shared)),
                };
                match sender.send(slot) {
                    Ok(()) => return,
                    // The waiter gave up (its request timed out): the slot is not handed back
                    // through this drop again, but to the next waiter here.
                    Err(mut slot) => slot.state = None,
                }
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn address(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// 100 requests from one address wait for 2 slots; a request from another address that comes
    /// after all of them is served within the next two hand-overs, not after the 100.
    #[tokio::test]
    async fn a_newcomer_from_another_address_waits_a_turn_not_the_flood() {
        let slots = FairSlots::new(2);
        let served = Arc::new(Mutex::new(Vec::new()));
        let held: Vec<Slot> = vec![
            slots.acquire(address(2)).await,
            slots.acquire(address(2)).await,
        ];
        let mut waiters = Vec::new();
        for n in 0..100 {
            let (slots, served) = (slots.clone(), Arc::clone(&served));
            waiters.push(tokio::spawn(async move {
                let _slot = slots.acquire(address(2)).await;
                lock(&served).push(format!("flood {n}"));
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await;
        }
        let newcomer = {
            let (slots, served) = (slots.clone(), Arc::clone(&served));
            tokio::spawn(async move {
                let _slot = slots.acquire(address(1)).await;
                lock(&served).push("newcomer".to_string());
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        newcomer.await.unwrap();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        let served = lock(&served).clone();
        let at = served.iter().position(|s| s == "newcomer").unwrap();
        assert!(at <= 2, "served {at}th: {served:?}");
        // The flood's own order is kept.
        let flood: Vec<&String> = served.iter().filter(|s| *s != "newcomer").collect();
        assert_eq!(flood[0], "flood 0");
        assert_eq!(flood[99], "flood 99");
    }

    #[tokio::test]
    async fn never_more_than_its_slots_at_once_and_waiters_that_give_up_pass_their_turn() {
        let slots = FairSlots::new(2);
        let in_use = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let first = slots.acquire(address(1)).await;
        let second = slots.acquire(address(1)).await;
        // A waiter that gives up before its turn.
        let gone = tokio::time::timeout(
            std::time::Duration::from_millis(10),
            slots.acquire(address(3)),
        )
        .await;
        assert!(gone.is_err());
        let mut tasks = Vec::new();
        for n in 0..40u8 {
            let (slots, in_use, most) = (slots.clone(), Arc::clone(&in_use), Arc::clone(&most));
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(address(n % 4)).await;
                let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                in_use.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        drop((first, second));
        for task in tasks {
            task.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        // Every slot came back.
        assert_eq!(lock(&slots.state).free, 2);
    }
}
