#!/usr/bin/perl
# Verify a message (stdin) with Mail::DKIM, DNS from a records file (`name value` or
# `name TXT value` per line), the way Mail::DKIM's own t/verifier.t replaces its DNS.
# Prints one line per signature and the overall result; exit 0 only for "pass".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;

my $path = shift or die "usage: maildkim_verify.pl RECORDS < message\n";
my %records;
open my $fh, '<', $path or die "cannot read $path: $!\n";
while (my $line = <$fh>) {
    chomp $line;
    next if $line =~ /^\s*(#|$)/;
    my ($name, $value) = split /\s+/, $line, 2;
    $value =~ s/^TXT\s+//;
    $name = lc $name;
    $name =~ s/\.$//;
    $records{$name} = $value;
}
close $fh;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ($name, $type) = @_;
        $name = lc $name;
        $name =~ s/\.$//;
        return unless exists $records{$name};
        my $value = $records{$name};
        my @chunks = ($value =~ /(.{1,255})/gs);
        return (Net::DNS::RR->new(name => $name, type => 'TXT', txtdata => [@chunks]));
    };
}

my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
for my $signature ($dkim->signatures) {
    printf "sig: d=%s s=%s -> %s\n", ($signature->domain // '?'), ($signature->selector // '?'),
        $signature->result_detail;
}
print "result: ", $dkim->result_detail, "\n";
exit($dkim->result eq 'pass' ? 0 : 1);
