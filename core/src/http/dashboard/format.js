// Number, duration, change and time formatting for the dashboard.

const whole = new Intl.NumberFormat('en-US');
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export const int = (n) => (n == null ? '—' : whole.format(n));

/** Seconds as "45s", "1m 23s", "2h 5m". */
export function duration(s) {
  if (s == null) return '—';
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m` : `${m}m ${r}s`;
}

/** A metric's value as shown. */
export function metric(name, v) {
  if (v == null) return '—';
  switch (name) {
    case 'bounce_rate':
    case 'percentage':
    case 'conversion_rate':
    case 'exit_rate':
      return `${decimal.format(v)}%`;
    case 'visit_duration':
    case 'time_on_page':
      return duration(v);
    case 'views_per_visit':
      return decimal.format(v);
    default:
      return typeof v === 'number' ? whole.format(v) : String(v);
  }
}

/** A comparison change: {text, tone} where tone is "good", "bad" or "flat". */
export function change(name, c) {
  if (c == null) return null;
  const points = name === 'bounce_rate';
  const unit = points ? ' pp' : '%';
  const arrow = c > 0 ? '↑' : c < 0 ? '↓' : '';
  let tone = c === 0 ? 'flat' : c > 0 ? 'good' : 'bad';
  if (points && c !== 0) tone = c > 0 ? 'bad' : 'good'; // a higher bounce rate is worse
  return { text: `${arrow}${arrow ? ' ' : ''}${decimal.format(Math.abs(c))}${unit}`, tone };
}

/** "3 s ago", "4 min ago", "2 h ago", "3 days ago". */
export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const d = Math.floor(s / 86400);
  return `${d} day${d === 1 ? '' : 's'} ago`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A time label of the API ("2026-01-05", "2026-01-05 10:00:00") in the given granularity. */
export function timeLabel(label, unit, long = false) {
  const [date, time = ''] = label.split(' ');
  const [y, mo, d] = date.split('-').map(Number);
  const day = `${d} ${MONTHS[mo - 1]}`;
  switch (unit) {
    case 'minute':
    case 'hour':
      return long ? `${day}, ${time.slice(0, 5)}` : time.slice(0, 5);
    case 'week':
      return long ? `Week of ${day} ${y}` : day;
    case 'month':
      return `${MONTHS[mo - 1]} ${y}`;
    default:
      return long ? `${day} ${y}` : day;
  }
}

/** A country code as its English name ("DE" -> "Germany"). */
let regionNames;
export function country(code) {
  if (!/^[A-Z]{2}$/.test(code)) return code;
  try {
    regionNames ??= new Intl.DisplayNames(['en'], { type: 'region' });
    return regionNames.of(code) || code;
  } catch {
    return code;
  }
}
