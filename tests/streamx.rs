//! The streamx README example, in virtual time: a producer that sleeps 1 s
//! between puts, a consumer that takes 2 s per value, on a rendezvous stream.

use futures::StreamExt;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use timecast::*;

#[test]
fn streamx_timeline() {
    let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    let log = Rc::new(RefCell::new(Vec::new()));
    let stream = AsyncStream::<u32>::new();
    let mut consumer = stream.subscribe();
    let l = log.clone();
    el.spawn(async move {
        while let Some(v) = consumer.next().await {
            l.borrow_mut().push((now().unix_secs(), v));
            sleep(Duration::from_secs(2)).await;
        }
        l.borrow_mut().push((now().unix_secs(), 99));
    });
    el.spawn(async move {
        for i in 0..5 {
            stream.put(i).await.unwrap();
            sleep(Duration::from_secs(1)).await;
        }
        stream.close();
    });
    el.run().unwrap();
    assert_eq!(
        *log.borrow(),
        vec![(0, 0), (2, 1), (4, 2), (6, 3), (8, 4), (10, 99)]
    );
}
