use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let mx = v.iter().max().unwrap();
    let mn = v.iter().min().unwrap();
    println!("{}", mx - mn);
}
