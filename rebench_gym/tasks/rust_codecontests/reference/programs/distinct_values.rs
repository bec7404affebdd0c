use std::collections::HashSet;
use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let set: HashSet<i64> = s.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    println!("{}", set.len());
}
