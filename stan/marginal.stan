// Hierarchical linear regression with the slopes b integrated out exactly.
//
// Group j's observations are MVN(a + mu_b x, eps^2 I + sigma_b^2 x x'). With the
// matrix determinant lemma and Sherman-Morrison, and r = y - a - mu_b x:
//   log det = (n_j - 1) log eps^2 + log(eps^2 + sigma_b^2 Sxx_j)
//   r' S^-1 r = RSSperp_j / eps^2 + Sxr_j^2 / (Sxx_j (eps^2 + sigma_b^2 Sxx_j))
// where RSSperp_j = sum (y - a)^2 - (sum x (y - a))^2 / Sxx_j is a quadratic in a
// (coefficients in transformed data; exactly 0 for one-point groups, which keeps
// the density finite as eps -> 0). Given the per-group sums, one gradient costs
// O(J), whatever N is. b_j is drawn exactly from its conditional posterior in
// generated quantities.
functions {
#include priors_functions.stan
}
data {
  int<lower=1> J;
  array[J] int<lower=0> n_group;   // points per group
  vector[J] sum_x;
  vector[J] sum_xx;
  vector[J] sum_y;
  vector[J] sum_xy;
  vector[J] sum_yy;
#include priors_data.stan
  int<lower=0, upper=1> write_b;   // draw the J slopes in generated quantities
  int<lower=0, upper=1> write_y_rep;
  int<lower=0> N_rep;              // observations to replicate (0 when not asked)
  vector[N_rep] x_rep;
  array[N_rep] int<lower=1, upper=J> g_rep;
}
transformed data {
  int N = sum(n_group);
  // Groups whose x are all 0 carry no information on b: Sxx = 0. Their
  // x-term vanishes (Sxr = 0); divide by 1 instead of 0.
  vector[J] sxx_safe;
  // RSSperp(a) = c0 + c1 a + c2 a^2, summed over groups.
  real c0 = 0;
  real c1 = 0;
  real c2 = 0;
  for (j in 1:J) {
    sxx_safe[j] = sum_xx[j] > 0 ? sum_xx[j] : 1;
    // A one-point group with x != 0 has RSSperp exactly 0: leave it out.
    if (n_group[j] >= 2 || sum_xx[j] == 0) {
      if (sum_xx[j] > 0) {
        c0 += sum_yy[j] - square(sum_xy[j]) / sum_xx[j];
        c1 += -2 * sum_y[j] + 2 * sum_xy[j] * sum_x[j] / sum_xx[j];
        c2 += n_group[j] - square(sum_x[j]) / sum_xx[j];
      } else {
        c0 += sum_yy[j];
        c1 += -2 * sum_y[j];
        c2 += n_group[j];
      }
    }
  }
  if (write_y_rep && N_rep == 0) {
    reject("write_y_rep = 1 needs the observations to replicate: N_rep > 0, x_rep, g_rep");
  }
}
parameters {
#include hyper_parameters.stan
}
model {
#include priors_model.stan
  {
    real eps2 = square(eps);
    real sb2 = square(sigma_b);
    vector[J] d = eps2 + sb2 * sum_xx;
    vector[J] sxr = sum_xy - a * sum_x - mu_b * sum_xx;
    // RSSperp >= 0 in exact arithmetic; clip round-off in c0 + c1 a + c2 a^2.
    real rss = fmax(c0 + (c1 + c2 * a) * a, 0);
    target += -0.5 * (N * log(2 * pi()) + (N - J) * log(eps2) + sum(log(d))
                      + rss / eps2 + sum(square(sxr) ./ (sxx_safe .* d)));
  }
}
generated quantities {
  vector[write_b || write_y_rep ? J : 0] b;
  vector[write_y_rep ? N_rep : 0] y_rep;
  if (write_b || write_y_rep) {
    // Conditional posterior of b_j, written stably for eps -> 0:
    // v = sigma_b^2 eps^2 / (eps^2 + sigma_b^2 Sxx),
    // m = (mu_b eps^2 + sigma_b^2 (Sxy - a Sx)) / (eps^2 + sigma_b^2 Sxx).
    real eps2 = square(eps);
    real sb2 = square(sigma_b);
    vector[J] d = eps2 + sb2 * sum_xx;
    vector[J] m = (mu_b * eps2 + sb2 * (sum_xy - a * sum_x)) ./ d;
    vector[J] s = sqrt(sb2 * eps2 ./ d);
    b = to_vector(normal_rng(m, s));
  }
  if (write_y_rep) {
    y_rep = to_vector(normal_rng(a + b[g_rep] .* x_rep, eps));
  }
}
