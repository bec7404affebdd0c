use std::collections::HashMap;
use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<u64> = s.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for x in &v { *counts.entry(*x).or_insert(0) += 1; }
    let mut answer = String::from("-1");
    for (k, c) in counts { if 2 * c > v.len() { answer = k.to_string(); } }
    println!("{}", answer);
}
