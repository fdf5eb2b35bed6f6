  // Per-group sums of the rows and constants computed once from the rows in numpy
  // (hierlin_stan.model.collapse): nothing large cancels inside Stan.
  int<lower=1> J;
  array[J] int<lower=0> n_group;   // points per group
  vector[J] sum_x;
  vector[J] sum_xx;
  // RSSperp(a) = sum_j [sum (y - a)^2 - (sum x (y - a))^2 / Sxx_j] = rss_min + c2 (a - a_star)^2
  // (one-point groups with x != 0 contribute exactly 0 and are left out), with rss_min from the
  // residual vector itself, never as a difference of large sums.
  real a_star;
  real<lower=0> c2;
  real<lower=0> rss_min;
  // r_star[j] = sum_i x_i (y_i - a_star - mu_star x_i) over group j, from the rows:
  // Sxr_j(a, mu_b) = sum x (y - a - mu_b x) = r_star[j] - (a - a_star) Sx_j - (mu_b - mu_star) Sxx_j.
  real mu_star;
  vector[J] r_star;
#include priors_data.stan
  int<lower=0, upper=1> write_b;   // draw the J slopes in generated quantities
  int<lower=0, upper=1> write_y_rep;
  int<lower=0> N_rep;              // observations to replicate (0 when not asked)
  vector[N_rep] x_rep;
  array[N_rep] int<lower=1, upper=J> g_rep;
