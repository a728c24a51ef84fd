//! Reads through the pending writes: the committed entries of a table
//! merged with the writes not yet committed, in key order, from both ends.
//!
//! # Invariants
//!
//! Both sides yield strictly increasing keys from the front and strictly
//! decreasing keys from the back, and never yield one entry from both ends.
//! On equal keys the pending side wins; a pending `None` (a removal) hides
//! the committed entry and yields nothing.

use std::cmp::Ordering;

/// Bytes read from the database, or from the pending writes.
#[derive(Clone, Debug)]
pub(crate) enum Bytes<'a> {
    Db(fjall::Slice),
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Bytes<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Db(s) => s,
            Bytes::Borrowed(b) => b,
            Bytes::Owned(v) => v,
        }
    }
}

/// A key and its value, or `None` for a pending removal.
pub(crate) type Entry<'a> = (Bytes<'a>, Option<Bytes<'a>>);

/// One sorted side with a slot for the entry peeked at each end.
struct Side<I, T> {
    iter: I,
    front: Option<T>,
    back: Option<T>,
}

impl<I, T, E> Side<I, T>
where
    I: DoubleEndedIterator<Item = Result<T, E>>,
{
    fn fill_front(&mut self) -> Result<(), E> {
        if self.front.is_none() {
            // Once the iterator is used up, the entry peeked at the back
            // is the only one left.
            self.front = match self.iter.next() {
                Some(entry) => Some(entry?),
                None => self.back.take(),
            };
        }
        Ok(())
    }

    fn fill_back(&mut self) -> Result<(), E> {
        if self.back.is_none() {
            self.back = match self.iter.next_back() {
                Some(entry) => Some(entry?),
                None => self.front.take(),
            };
        }
        Ok(())
    }
}

/// The committed side `db` merged with the pending side `pending`.
pub(crate) struct Merge<'a, D, P> {
    db: Side<D, Entry<'a>>,
    pending: Side<P, Entry<'a>>,
}

impl<'a, D, P, E> Merge<'a, D, P>
where
    D: DoubleEndedIterator<Item = Result<Entry<'a>, E>>,
    P: DoubleEndedIterator<Item = Result<Entry<'a>, E>>,
{
    pub(crate) fn new(db: D, pending: P) -> Self {
        Merge {
            db: Side {
                iter: db,
                front: None,
                back: None,
            },
            pending: Side {
                iter: pending,
                front: None,
                back: None,
            },
        }
    }

    /// The next live entry from the front (`back == false`) or the back.
    fn step(&mut self, back: bool) -> Option<Result<(Bytes<'a>, Bytes<'a>), E>> {
        loop {
            let filled = if back {
                self.db.fill_back().and(self.pending.fill_back())
            } else {
                self.db.fill_front().and(self.pending.fill_front())
            };
            if let Err(e) = filled {
                return Some(Err(e));
            }
            let (db, pending) = if back {
                (&mut self.db.back, &mut self.pending.back)
            } else {
                (&mut self.db.front, &mut self.pending.front)
            };
            // Which side's entry comes next: the smaller key from the
            // front, the larger from the back.
            let db_first = match (&*db, &*pending) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(d), Some(p)) if back => p.0.as_ref().cmp(d.0.as_ref()),
                (Some(d), Some(p)) => d.0.as_ref().cmp(p.0.as_ref()),
            };
            let entry = match db_first {
                Ordering::Less => db.take(),
                Ordering::Greater => pending.take(),
                Ordering::Equal => {
                    db.take();
                    pending.take()
                }
            };
            if let Some((key, Some(value))) = entry {
                return Some(Ok((key, value)));
            }
        }
    }
}

impl<'a, D, P, E> Iterator for Merge<'a, D, P>
where
    D: DoubleEndedIterator<Item = Result<Entry<'a>, E>>,
    P: DoubleEndedIterator<Item = Result<Entry<'a>, E>>,
{
    type Item = Result<(Bytes<'a>, Bytes<'a>), E>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl<'a, D, P, E> DoubleEndedIterator for Merge<'a, D, P>
where
    D: DoubleEndedIterator<Item = Result<Entry<'a>, E>>,
    P: DoubleEndedIterator<Item = Result<Entry<'a>, E>>,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::store::key::tests::Rng;

    /// Random committed and pending contents, read from random ends,
    /// against a `BTreeMap` holding what the merge must show.
    #[test]
    fn merge_matches_a_model_from_both_ends() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for _ in 0..3_000 {
            let mut db = BTreeMap::new();
            let mut pending = BTreeMap::new();
            for _ in 0..rng.next() % 8 {
                db.insert(vec![(rng.next() % 12) as u8], vec![1u8]);
            }
            for _ in 0..rng.next() % 8 {
                let value = (!rng.next().is_multiple_of(3)).then_some(vec![2u8]);
                pending.insert(vec![(rng.next() % 12) as u8], value);
            }
            let mut model = db.clone();
            for (k, v) in &pending {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
            let db_side = db
                .iter()
                .map(|(k, v)| Ok::<_, ()>((Bytes::Borrowed(k), Some(Bytes::Borrowed(v)))));
            let pending_side = pending
                .iter()
                .map(|(k, v)| Ok((Bytes::Borrowed(k), v.as_deref().map(Bytes::Borrowed))));
            let mut merge = Merge::new(db_side, pending_side);
            let mut expected = model.into_iter().collect::<std::collections::VecDeque<_>>();
            loop {
                let from_back = rng.next().is_multiple_of(2);
                let got = if from_back {
                    merge.next_back()
                } else {
                    merge.next()
                };
                let want = if from_back {
                    expected.pop_back()
                } else {
                    expected.pop_front()
                };
                let got = got.map(|r| {
                    let (k, v) = r.unwrap();
                    (k.as_ref().to_vec(), v.as_ref().to_vec())
                });
                assert_eq!(got, want);
                if want.is_none() {
                    break;
                }
            }
        }
    }
}
