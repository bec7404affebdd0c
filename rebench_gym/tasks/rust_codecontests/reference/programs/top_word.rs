use std::collections::BTreeMap;
use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for w in s.split_whitespace().skip(1) { *counts.entry(w).or_insert(0) += 1; }
    let best = *counts.values().max().unwrap();
    let word = counts.iter().find(|(_, c)| **c == best).unwrap().0;
    println!("{} {}", word, best);
}
