use std::io::{self, Read};
fn upto(y: i64) -> i64 { y / 4 - y / 100 + y / 400 }
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    println!("{}", upto(v[1]) - upto(v[0] - 1));
}
