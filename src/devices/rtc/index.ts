export { RtcDevice, defaultRtcClocks, type RtcDeviceOptions } from './rtc-device.js';
export { RtcDriver, RtcRequestError, type RtcAlarmEvent, type RtcClockInfo, type RtcDriverOptions } from './rtc-driver.js';
export { HOST_TIME_SOURCE, U64, parseLeapSecondsList, systemLeapSeconds, RtcClockReader, type LeapSecondEntry, type LeapSecondTable, type RtcClockSpec, type RtcTimeSource } from './rtc-clocks.js';
export { HOST_TIMERS, MAX_ALARM_WAIT_MS, type RtcTimers } from './rtc-alarms.js';
export { RTC_TYPE, type RtcDeviceArgs } from './rtc-type.js';
