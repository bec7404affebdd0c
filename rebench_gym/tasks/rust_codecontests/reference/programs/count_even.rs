use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let c = s.split_whitespace().skip(1).map(|x| x.parse::<i64>().unwrap()).filter(|x| x % 2 == 0).count();
    println!("{}", c);
}
