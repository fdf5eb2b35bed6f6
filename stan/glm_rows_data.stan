  // The rows: y = X beta + Z u_g + e.
  int<lower=0> N;
  int<lower=0> p;
  int<lower=0> q;
  int<lower=1> J;
  int<lower=0, upper=1> correlated;
  vector[N] y;
  matrix[N, p] X;
  matrix[N, q] Z;
  array[N] int<lower=1, upper=J> g;
