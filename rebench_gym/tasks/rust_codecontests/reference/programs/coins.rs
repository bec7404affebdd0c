use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    for x in s.split_whitespace().skip(1) {
        let mut a: u64 = x.parse().unwrap();
        let mut count = 0;
        for coin in [25u64, 10, 5, 1].iter() {
            count += a / coin;
            a %= coin;
        }
        println!("{}", count);
    }
}
