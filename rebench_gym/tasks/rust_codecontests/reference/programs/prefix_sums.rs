use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let mut total: i64 = 0;
    let mut out = Vec::new();
    for x in s.split_whitespace().skip(1) {
        total += x.parse::<i64>().unwrap();
        out.push(total.to_string());
    }
    println!("{}", out.join(" "));
}
