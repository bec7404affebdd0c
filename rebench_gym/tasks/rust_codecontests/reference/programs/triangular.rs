use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let n: u128 = s.trim().parse().unwrap();
    println!("{}", n * (n + 1) / 2 % 1_000_000_007);
}
