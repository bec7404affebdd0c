use std::io::{self, Read};
fn is_prime(n: u64) -> bool {
    if n < 2 { return false; }
    let mut i = 2;
    while i * i <= n {
        if n % i == 0 { return false; }
        i += 1;
    }
    true
}
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    for x in s.split_whitespace().skip(1) {
        println!("{}", if is_prime(x.parse().unwrap()) { "YES" } else { "NO" });
    }
}
